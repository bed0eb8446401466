import { and, eq, inArray, type SQL, sql } from "drizzle-orm";
import type { Logger } from "pino";
import { type Database, type Executor, queryRows } from "../../db/client.js";
import { withTransactionRetry } from "../../db/errors.js";
import {
  MAX_USER_ID_LENGTH,
  revenuecatEventsTable,
  tokenBalancesTable,
  type WebhookOutcome,
} from "../../db/schema.js";
import { BalanceLimitError, DuplicateReferenceError } from "../ledger/ledger.errors.js";
import { findByExternalRef } from "../ledger/ledger.queries.js";
import { appendEntry } from "../ledger/ledger.service.js";
import {
  CREDIT_TYPES,
  isRefund,
  type RevenuecatEvent,
  resolveUserId,
  revenuecatDeliverySchema,
  storeTransactionRef,
  tokensForProduct,
} from "./revenuecat.event.js";

export interface PurchasesConfig {
  readonly productTokenMap: Readonly<Record<string, number>>;
  readonly environments: readonly string[];
}

export interface DeliveryResult {
  readonly outcome: WebhookOutcome;
  readonly detail: string;
  readonly userId: string | null;
  readonly ledgerEntryId: number | null;
}

/** Outcomes that a later delivery, or `webhooks:reprocess`, may process again. */
const RETRYABLE_OUTCOMES: readonly WebhookOutcome[] = ["failed"];
const REPROCESSABLE_OUTCOMES: readonly WebhookOutcome[] = ["failed", "unmapped"];

const INFORMATIONAL_TYPES = new Set([
  "CANCELLATION",
  "UNCANCELLATION",
  "EXPIRATION",
  "BILLING_ISSUE",
  "PRODUCT_CHANGE",
  "SUBSCRIPTION_PAUSED",
  "SUBSCRIPTION_EXTENDED",
  "TEMPORARY_ENTITLEMENT_GRANT",
  "TRANSFER",
  "EXPERIMENT_ENROLLMENT",
  "INVOICE_ISSUANCE",
  "VIRTUAL_CURRENCY_TRANSACTION",
  "SUBSCRIBER_ALIAS",
]);

function result(
  outcome: WebhookOutcome,
  detail: string,
  userId: string | null = null,
  ledgerEntryId: number | null = null,
): DeliveryResult {
  return { outcome, detail, userId, ledgerEntryId };
}

export interface PurchasesService {
  /** Records and applies one delivery; resolves only after everything it wrote has committed. */
  handleDelivery(rawBody: string, event: RevenuecatEvent, log?: Logger): Promise<DeliveryResult>;
  /** Applies a recorded unmapped or failed event again, with today's product map. */
  reprocess(eventId: string): Promise<DeliveryResult | null>;
  /** Event ids that `reprocess` would pick up. */
  reprocessable(): Promise<string[]>;
  /** Reprocesses every reprocessable event, one at a time; counts what became of them. */
  reprocessAll(): Promise<ReprocessSummary>;
}

export interface ReprocessSummary {
  readonly reprocessed: number;
  /** How many events ended in each outcome ("skipped": another run took it first). */
  readonly outcomes: Record<string, number>;
}

export function createPurchasesService(deps: {
  db: Database;
  logger: Logger;
  config: PurchasesConfig;
}): PurchasesService {
  const { db, logger, config } = deps;

  /**
   * Claims the event row. Concurrent deliveries of one id queue on its primary key; only the first,
   * or a redelivery of one that failed, goes on to process it.
   */
  async function claim(
    tx: Executor,
    rawBody: string,
    event: RevenuecatEvent,
  ): Promise<DeliveryResult | null> {
    const retrying = sql`${revenuecatEventsTable.outcome} IN ('failed')`;
    const [row] = await tx
      .insert(revenuecatEventsTable)
      .values({ ...eventColumns(event, rawBody), outcome: "processing" })
      .onConflictDoUpdate({
        target: revenuecatEventsTable.eventId,
        // A retry of a failed attempt records the delivery as it is now; a processed event keeps
        // what it was processed with.
        set: {
          deliveries: sql`${revenuecatEventsTable.deliveries} + 1`,
          ...refreshedColumns(retrying),
        },
      })
      .returning({
        outcome: revenuecatEventsTable.outcome,
        inserted: sql<boolean>`(xmax = 0)`,
        userId: revenuecatEventsTable.userId,
        ledgerEntryId: revenuecatEventsTable.ledgerEntryId,
      });
    if (!row || row.inserted || RETRYABLE_OUTCOMES.includes(row.outcome)) return null;
    return result("duplicate", `already processed: ${row.outcome}`, row.userId, row.ledgerEntryId);
  }

  async function apply(tx: Executor, event: RevenuecatEvent, log: Logger): Promise<DeliveryResult> {
    const environment = (event.environment ?? "PRODUCTION").toUpperCase();
    if (event.type === "TEST") return result("ignored", "test event from the RevenueCat dashboard");
    if (!config.environments.includes(environment)) {
      return result("ignored", `environment ${environment} is not accepted`);
    }
    if (CREDIT_TYPES.has(event.type)) return credit(tx, event);
    if (isRefund(event)) return refund(tx, event, log);
    if (event.type === "REFUND_REVERSED") return reverseRefund(tx, event);
    if (INFORMATIONAL_TYPES.has(event.type)) return result("ignored", `${event.type} moves no tokens`);
    return result("ignored", `unknown event type ${event.type}`);
  }

  /**
   * Credits a purchase once per store transaction. `refundReversed` is set when a reversal releases a
   * purchase that its early refund held back.
   */
  async function credit(
    tx: Executor,
    event: RevenuecatEvent,
    refundReversed = false,
  ): Promise<DeliveryResult> {
    const userId = resolveUserId(event);
    if (!userId) return result("ignored", "no app user id in the event");
    if (userId.length > MAX_USER_ID_LENGTH) {
      return result(
        "failed",
        `app user id is longer than ${MAX_USER_ID_LENGTH} characters; no balance can hold it`,
      );
    }
    const tokens = tokensForProduct(config.productTokenMap, event.product_id);
    if (tokens === null)
      return result(
        "unmapped",
        `product ${event.product_id ?? "(none)"} is not in PRODUCT_TOKEN_MAP`,
        userId,
      );
    const ref = storeTransactionRef(event) ?? `event:${event.id}`;
    await lockStoreTransaction(tx, ref);
    const state = await purchaseState(tx, ref, event);
    if (state.creditedBy) {
      return result(
        "duplicate",
        `transaction ${ref} already credited`,
        state.creditedBy.userId,
        state.creditedBy.id,
      );
    }
    if (state.refundedFirst && !state.reversedFirst && !refundReversed) {
      return result(
        "ignored",
        `${HELD_BY_REFUND}: transaction ${ref} was refunded before its purchase arrived`,
        userId,
      );
    }
    const entry = await appendEntry(tx, {
      userId,
      amount: tokens,
      kind: "PURCHASE",
      description: `${event.type} ${event.product_id}`,
      metadata: purchaseMetadata(event),
      externalRef: ref,
    });
    if (!entry) throw new Error("credit wrote no entry");
    return result("credited", `${tokens} tokens for ${event.product_id}`, userId, entry.id);
  }

  /**
   * Whether this store transaction was already credited, and whether its refund came first
   * (RevenueCat does not guarantee order), in one round trip.
   */
  async function purchaseState(
    tx: Executor,
    ref: string,
    event: RevenuecatEvent,
  ): Promise<{
    creditedBy: { id: number; userId: string } | null;
    refundedFirst: boolean;
    reversedFirst: boolean;
  }> {
    const [row] = await queryRows<{
      id: string | number | null;
      user_id: string | null;
      refunded_first: boolean;
      reversed_first: boolean;
    }>(
      tx,
      sql`SELECT credited.id, credited.user_id,
                 ${waitingEvent(event, sql`'CANCELLATION'`)} AS refunded_first,
                 ${waitingEvent(event, sql`'REFUND_REVERSED'`)} AS reversed_first
          FROM (SELECT 1) AS one
          LEFT JOIN token_transactions AS credited ON credited.kind = 'PURCHASE' AND credited.external_ref = ${ref}`,
    );
    const creditedBy = row?.id != null && row.user_id ? { id: Number(row.id), userId: row.user_id } : null;
    return {
      creditedBy,
      refundedFirst: row?.refunded_first === true,
      reversedFirst: row?.reversed_first === true,
    };
  }

  async function refund(tx: Executor, event: RevenuecatEvent, log: Logger): Promise<DeliveryResult> {
    const ref = storeTransactionRef(event);
    if (ref) await lockStoreTransaction(tx, ref);
    const purchase = ref ? await findByExternalRef(tx, "PURCHASE", ref) : null;
    if (!ref || !purchase)
      return result("unmatched", `no credited purchase for transaction ${ref ?? "(none)"}`);
    const earlier = await findByExternalRef(tx, "REFUND", ref);
    if (earlier)
      return result("duplicate", `transaction ${ref} already refunded`, earlier.userId, earlier.id);
    if (await isWaiting(tx, event, "REFUND_REVERSED")) {
      return result("ignored", `the refund of ${ref} was reversed before it arrived`, purchase.userId);
    }
    // Lock the balance so that what we take is what is there; the balance never goes negative.
    const [row] = await tx
      .select({ balance: tokenBalancesTable.balance })
      .from(tokenBalancesTable)
      .where(eq(tokenBalancesTable.userId, purchase.userId))
      .for("update");
    const recovered = Math.min(row?.balance ?? 0, purchase.amount);
    const shortfall = purchase.amount - recovered;
    const entry = await appendEntry(tx, {
      userId: purchase.userId,
      amount: -recovered,
      kind: "REFUND",
      description: `Refund of ${purchase.description ?? ref}`,
      metadata: {
        ...purchaseMetadata(event),
        refundedTokens: purchase.amount,
        recovered,
        shortfall,
        purchaseEntryId: purchase.id,
      },
      externalRef: ref,
    });
    if (!entry) throw new Error("refund wrote no entry");
    if (shortfall > 0) {
      log.warn(
        { userId: purchase.userId, refundedTokens: purchase.amount, recovered, shortfall, eventId: event.id },
        "refund could not recover every token: they were already spent",
      );
    }
    return result(
      "refunded",
      `took back ${recovered} of ${purchase.amount} tokens`,
      purchase.userId,
      entry.id,
    );
  }

  async function reverseRefund(tx: Executor, event: RevenuecatEvent): Promise<DeliveryResult> {
    const ref = storeTransactionRef(event);
    if (ref) await lockStoreTransaction(tx, ref);
    const refundEntry = ref ? await findByExternalRef(tx, "REFUND", ref) : null;
    if (!ref || !refundEntry) {
      const held = ref ? await heldPurchase(tx, event) : null;
      if (!held) return result("unmatched", `no refund for transaction ${ref ?? "(none)"}`);
      // The refund came before its purchase and held it back; with the refund reversed, the purchase
      // is credited after all, and its own record says so.
      const credited = await credit(tx, held.event, true);
      await finish(tx, held.eventId, credited);
      return result(
        "refund_reversed",
        `refund reversed: ${credited.detail}`,
        credited.userId,
        credited.ledgerEntryId,
      );
    }
    const earlier = await findByExternalRef(tx, "REFUND_REVERSAL", ref);
    if (earlier) return result("duplicate", `refund of ${ref} already reversed`, earlier.userId, earlier.id);
    const entry = await appendEntry(tx, {
      userId: refundEntry.userId,
      amount: -refundEntry.amount,
      kind: "REFUND_REVERSAL",
      description: `Refund reversed for ${ref}`,
      metadata: { ...purchaseMetadata(event), refundEntryId: refundEntry.id },
      externalRef: ref,
    });
    if (!entry) throw new Error("refund reversal wrote no entry");
    return result("refund_reversed", `gave back ${-refundEntry.amount} tokens`, refundEntry.userId, entry.id);
  }

  /**
   * Serialises all work on one store transaction: its purchase, refund and reversal may arrive at the
   * same moment, and without this neither transaction would see the other's uncommitted row. The
   * lock is transaction-scoped, so it is released by the commit or rollback.
   */
  async function lockStoreTransaction(tx: Executor, ref: string): Promise<void> {
    await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtextextended(${ref}, 0))`);
  }

  /** A recorded event of `type` for the same store transaction that found nothing to act on yet. */
  function waitingEvent(event: RevenuecatEvent, type: SQL) {
    return sql`EXISTS (
      SELECT 1 FROM revenuecat_events AS early
       WHERE early.transaction_id = ${event.transaction_id ?? null}
         AND early.type = ${type} AND early.outcome = 'unmatched'
         AND (${event.store ?? null}::text IS NULL OR early.store = ${event.store ?? null}))`;
  }

  async function isWaiting(tx: Executor, event: RevenuecatEvent, type: string): Promise<boolean> {
    const [row] = await queryRows<{ waiting: boolean }>(
      tx,
      sql`SELECT ${waitingEvent(event, sql`${type}`)} AS waiting`,
    );
    return row?.waiting === true;
  }

  /** The purchase event of this store transaction that an early refund kept from crediting, if any. */
  async function heldPurchase(
    tx: Executor,
    event: RevenuecatEvent,
  ): Promise<{ eventId: string; event: RevenuecatEvent } | null> {
    const [row] = await queryRows<{ event_id: string; raw_body: string }>(
      tx,
      sql`SELECT event_id, raw_body FROM revenuecat_events
           WHERE transaction_id = ${event.transaction_id ?? null}
             AND (${event.store ?? null}::text IS NULL OR store = ${event.store ?? null})
             AND outcome = 'ignored' AND detail LIKE ${`${HELD_BY_REFUND}:%`}
           ORDER BY received_at LIMIT 1`,
    );
    if (!row) return null;
    const body = revenuecatDeliverySchema.safeParse(JSON.parse(row.raw_body));
    return body.success ? { eventId: row.event_id, event: body.data.event } : null;
  }

  async function finish(tx: Executor, eventId: string, outcome: DeliveryResult): Promise<void> {
    await tx
      .update(revenuecatEventsTable)
      .set({
        outcome: outcome.outcome,
        detail: outcome.detail,
        userId: outcome.userId,
        ledgerEntryId: outcome.ledgerEntryId,
        processedAt: new Date(),
      })
      .where(eq(revenuecatEventsTable.eventId, eventId));
  }

  /** Runs one attempt; a concurrent twin's unique-reference win makes us retry and see a duplicate. */
  async function attempt(work: () => Promise<DeliveryResult>): Promise<DeliveryResult> {
    for (let tries = 1; ; tries += 1) {
      try {
        return await withTransactionRetry(work);
      } catch (error) {
        if (!(error instanceof DuplicateReferenceError) || tries >= 3) throw error;
      }
    }
  }

  async function recordFailure(rawBody: string, event: RevenuecatEvent, reason: string): Promise<void> {
    await db
      .insert(revenuecatEventsTable)
      .values({ ...eventColumns(event, rawBody), outcome: "failed", detail: reason })
      .onConflictDoUpdate({
        target: revenuecatEventsTable.eventId,
        set: { outcome: "failed", detail: reason, processedAt: new Date(), ...refreshedColumns(sql`true`) },
        setWhere: inArray(revenuecatEventsTable.outcome, ["processing", "failed", "unmapped"]),
      });
  }

  async function handleDelivery(
    rawBody: string,
    event: RevenuecatEvent,
    log = logger,
  ): Promise<DeliveryResult> {
    try {
      const outcome = await attempt(() =>
        db.transaction(async (tx) => {
          const duplicate = await claim(tx, rawBody, event);
          if (duplicate) return duplicate;
          const processed = await apply(tx, event, log);
          await finish(tx, event.id, processed);
          return processed;
        }),
      );
      logOutcome(event, outcome, log);
      return outcome;
    } catch (error) {
      // A balance at its ceiling will not change by retrying: record it for an operator and answer 200.
      if (error instanceof BalanceLimitError) {
        const outcome = result("failed", "the balance would exceed its limit", resolveUserId(event));
        await recordFailure(rawBody, event, outcome.detail);
        log.error({ eventId: event.id, userId: outcome.userId }, "purchase not credited: balance limit");
        return outcome;
      }
      await recordFailure(rawBody, event, "processing failed; RevenueCat will retry").catch(() => undefined);
      throw error;
    }
  }

  function logOutcome(event: RevenuecatEvent, outcome: DeliveryResult, log: Logger): void {
    const fields = { eventId: event.id, type: event.type, outcome: outcome.outcome, userId: outcome.userId };
    if (outcome.outcome === "credited") {
      const tokens = tokensForProduct(config.productTokenMap, event.product_id);
      log.info(
        { ...fields, tokens },
        `Successfully processed token purchase: ${tokens} tokens for user ${outcome.userId}`,
      );
    } else {
      log.info({ ...fields, detail: outcome.detail }, "RevenueCat event recorded");
    }
  }

  return {
    handleDelivery,
    async reprocess(eventId) {
      const [row] = await db
        .select({ rawBody: revenuecatEventsTable.rawBody, outcome: revenuecatEventsTable.outcome })
        .from(revenuecatEventsTable)
        .where(eq(revenuecatEventsTable.eventId, eventId));
      if (!row || !REPROCESSABLE_OUTCOMES.includes(row.outcome)) return null;
      const body = JSON.parse(row.rawBody) as { event: RevenuecatEvent };
      const outcome = await attempt(() =>
        db.transaction(async (tx) => {
          // Claim it again under a row lock, so two reprocess runs cannot both apply it.
          const [claimed] = await tx
            .update(revenuecatEventsTable)
            .set({ outcome: "processing" })
            .where(
              and(
                eq(revenuecatEventsTable.eventId, eventId),
                inArray(revenuecatEventsTable.outcome, [...REPROCESSABLE_OUTCOMES]),
              ),
            )
            .returning({ eventId: revenuecatEventsTable.eventId });
          if (!claimed) return result("duplicate", "already reprocessed");
          const processed = await apply(tx, body.event, logger);
          await finish(tx, eventId, processed);
          return processed;
        }),
      );
      logOutcome(body.event, outcome, logger);
      return outcome;
    },
    async reprocessAll() {
      const ids = await this.reprocessable();
      const outcomes: Record<string, number> = {};
      for (const eventId of ids) {
        const outcome = (await this.reprocess(eventId))?.outcome ?? "skipped";
        outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      }
      return { reprocessed: ids.length, outcomes };
    },
    async reprocessable() {
      const rows = await db
        .select({ eventId: revenuecatEventsTable.eventId })
        .from(revenuecatEventsTable)
        .where(inArray(revenuecatEventsTable.outcome, [...REPROCESSABLE_OUTCOMES]))
        .orderBy(revenuecatEventsTable.receivedAt);
      return rows.map((row) => row.eventId);
    },
  };
}

/** Marks the detail of a purchase that its early refund held back, so a reversal can find it. */
const HELD_BY_REFUND = "held back by its refund";

/** Every column of `revenuecat_events` that comes from the delivery itself. */
function eventColumns(event: RevenuecatEvent, rawBody: string) {
  return {
    eventId: event.id,
    type: event.type,
    appUserId: event.app_user_id ?? null,
    environment: event.environment ?? null,
    store: event.store ?? null,
    productId: event.product_id ?? null,
    transactionId: event.transaction_id ?? null,
    rawBody,
  };
}

/** On conflict: take the delivery's columns from the new attempt when `when` holds, else keep them. */
function refreshedColumns(when: SQL) {
  const fresh = (column: keyof ReturnType<typeof eventColumns>, name: string) =>
    sql`CASE WHEN ${when} THEN EXCLUDED.${sql.identifier(name)} ELSE ${revenuecatEventsTable[column]} END`;
  return {
    type: fresh("type", "type"),
    appUserId: fresh("appUserId", "app_user_id"),
    environment: fresh("environment", "environment"),
    store: fresh("store", "store"),
    productId: fresh("productId", "product_id"),
    transactionId: fresh("transactionId", "transaction_id"),
    rawBody: fresh("rawBody", "raw_body"),
  };
}

function purchaseMetadata(event: RevenuecatEvent): Record<string, unknown> {
  return {
    eventId: event.id,
    eventType: event.type,
    productId: event.product_id ?? null,
    store: event.store ?? null,
    transactionId: event.transaction_id ?? null,
    environment: event.environment ?? null,
  };
}
