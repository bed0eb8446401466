import type { Logger } from "pino";
import type { Database, DatabaseHandle, Executor } from "../../db/client.js";
import { withRetry } from "../../db/retry.js";
import { BalanceLimitError, isReferenceRace } from "../ledger/ledger.errors.js";
import { hasLegacyImport } from "../ledger/ledger.queries.js";
import type { LedgerService } from "../ledger/ledger.service.js";
import { logOutcome } from "./outcome-log.js";
import { type Decision, decide, type PurchasePolicyConfig } from "./purchase.policy.js";
import { purchaseMetadata, type RevenuecatEvent, resolveUserId } from "./revenuecat.event.js";
import { createDeliveryWriter } from "./webhook-deliveries.js";
import {
  BALANCE_LIMIT_DETAIL,
  claim,
  claimForReprocess,
  type DeliveryResult,
  finish,
  HELD_BY_REFUND,
  heldPurchase,
  isWaiting,
  lockStoreTransaction,
  recordFailure,
  reprocessable,
  deliveryResult as result,
} from "./webhook-inbox.js";

export type { DeliveryResult } from "./webhook-inbox.js";

export interface PurchasesService {
  /** Records and applies one delivery; resolves only after everything it wrote has committed. */
  handleDelivery(rawBody: string, event: RevenuecatEvent, log?: Logger): Promise<DeliveryResult>;
  /** Applies a recorded unmapped or failed event again, with today's product map. */
  reprocess(eventId: string, log?: Logger): Promise<DeliveryResult | null>;
  /** Event ids that `reprocess` would pick up. */
  reprocessable(): Promise<string[]>;
  /** Reprocesses every reprocessable event, one at a time; counts what became of them. */
  reprocessAll(log?: Logger): Promise<ReprocessSummary>;
}

export interface ReprocessSummary {
  readonly reprocessed: number;
  /** How many events ended in each outcome ("skipped": another run took it first). */
  readonly outcomes: Record<string, number>;
}

/** After the switch from a subscriber attribute, old app builds may keep writing it. */
export interface LegacyAttributeWatch {
  readonly attribute: string;
  /** Told each delivery that still carries the attribute for a user whose legacy balance was imported. */
  readonly onSeen: (userId: string) => void;
}

/**
 * RevenueCat events in, ledger operations out: each delivery is judged by the policy, claimed in the
 * inbox, carried out through the ledger and recorded. Credits and plain outcomes go in one batched
 * statement (webhook-deliveries.ts); refunds and reversals in one transaction that is retried as a
 * whole (a serialization failure, a deadlock, or a twin winning the store reference's unique index).
 */
export function createPurchasesService(deps: {
  database: Pick<DatabaseHandle, "db" | "query">;
  ledger: LedgerService;
  logger: Logger;
  config: PurchasePolicyConfig;
  legacy?: LegacyAttributeWatch | undefined;
  /** Told the size of every batch of deliveries written together. */
  onBatch?: (size: number) => void;
}): PurchasesService {
  const deliveries = createDeliveryWriter(deps.database, { onBatch: deps.onBatch });
  return new Purchases(deps.database.db, deliveries, deps.ledger, deps.logger, deps.config, deps.legacy);
}

class Purchases implements PurchasesService {
  constructor(
    private readonly db: Database,
    private readonly deliveries: ReturnType<typeof createDeliveryWriter>,
    private readonly ledger: LedgerService,
    private readonly logger: Logger,
    private readonly config: PurchasePolicyConfig,
    private readonly legacy: LegacyAttributeWatch | undefined,
  ) {}

  async handleDelivery(rawBody: string, event: RevenuecatEvent, log = this.logger): Promise<DeliveryResult> {
    const decision = decide(event, this.config);
    // Purchases and events that move nothing (nearly every delivery) take one statement, batched with
    // the deliveries that arrive with them; refunds and reversals take a transaction of their own.
    if (decision.action !== "refund" && decision.action !== "reverse") {
      const outcome = await this.deliveries.record(rawBody, event, decision, purchaseMetadata(event));
      if (outcome.outcome === "failed" && outcome.detail === BALANCE_LIMIT_DETAIL) {
        log.error({ eventId: event.id, userId: outcome.userId }, "purchase not credited: balance limit");
      }
      logOutcome(event, outcome, log);
      if (outcome.outcome !== "duplicate") await this.watchLegacyAttribute(event, outcome, log);
      return outcome;
    }
    try {
      const outcome = await this.inTransaction(async (tx) => {
        const duplicate = await claim(tx, rawBody, event);
        if (duplicate) return duplicate;
        const applied = await this.apply(tx, event, decision, log);
        await finish(tx, event.id, applied);
        return applied;
      });
      logOutcome(event, outcome, log);
      if (outcome.outcome !== "duplicate") await this.watchLegacyAttribute(event, outcome, log);
      return outcome;
    } catch (error) {
      // A balance at its ceiling will not change by retrying: record it for an operator and answer 200.
      if (error instanceof BalanceLimitError) {
        const outcome = result("failed", BALANCE_LIMIT_DETAIL, resolveUserId(event));
        await recordFailure(this.db, rawBody, event, outcome.detail);
        log.error({ eventId: event.id, userId: outcome.userId }, "purchase not credited: balance limit");
        return outcome;
      }
      await recordFailure(this.db, rawBody, event, "processing failed; RevenueCat will retry").catch(
        () => undefined,
      );
      throw error;
    }
  }

  async reprocess(eventId: string, log = this.logger): Promise<DeliveryResult | null> {
    const claimed: { event: RevenuecatEvent | null } = { event: null };
    const outcome = await this.inTransaction(async (tx) => {
      claimed.event = await claimForReprocess(tx, eventId);
      if (!claimed.event) return result("duplicate", "not reprocessable");
      const applied = await this.apply(tx, claimed.event, decide(claimed.event, this.config), log);
      await finish(tx, eventId, applied);
      return applied;
    });
    if (!claimed.event) return null;
    logOutcome(claimed.event, outcome, log);
    return outcome;
  }

  reprocessable(): Promise<string[]> {
    return reprocessable(this.db);
  }

  async reprocessAll(log = this.logger): Promise<ReprocessSummary> {
    const ids = await reprocessable(this.db);
    const outcomes: Record<string, number> = {};
    for (const eventId of ids) {
      const outcome = (await this.reprocess(eventId, log))?.outcome ?? "skipped";
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    }
    return { reprocessed: ids.length, outcomes };
  }

  /**
   * A delivery whose subscriber_attributes still carries the legacy token attribute for a user whose
   * legacy balance was imported means an old app build is still writing it: counted and logged, and
   * never credited (the webhook credits purchases only).
   */
  private async watchLegacyAttribute(
    event: RevenuecatEvent,
    outcome: DeliveryResult,
    log: Logger,
  ): Promise<void> {
    if (!this.legacy) return;
    const attributes = (event as { subscriber_attributes?: unknown }).subscriber_attributes;
    if (typeof attributes !== "object" || attributes === null || !(this.legacy.attribute in attributes))
      return;
    const userId = outcome.userId ?? resolveUserId(event);
    if (!userId || !(await hasLegacyImport(this.db, userId))) return;
    this.legacy.onSeen(userId);
    log.warn(
      { userId, eventId: event.id, attribute: this.legacy.attribute },
      "an imported user's app still writes the legacy token attribute: an old app build is in use",
    );
  }

  /** One transaction, retried as a whole; the only retry loop on this path. */
  private inTransaction(work: (tx: Executor) => Promise<DeliveryResult>): Promise<DeliveryResult> {
    return withRetry(() => this.db.transaction(work), {
      alsoWhen: isReferenceRace,
    });
  }

  private async apply(tx: Executor, event: RevenuecatEvent, decision: Decision, log: Logger) {
    switch (decision.action) {
      case "ignore":
        return result("ignored", decision.reason);
      case "fail":
        return result("failed", decision.reason);
      case "unmapped":
        return result("unmapped", decision.reason, decision.userId);
      case "credit":
        return this.credit(tx, event, decision);
      case "refund":
        return this.refund(tx, event, decision.storeRef, log);
      case "reverse":
        return this.reverse(tx, event, decision.storeRef);
    }
  }

  /**
   * Credits a purchase once per store transaction, unless its refund came first (RevenueCat does not
   * guarantee order) and was not itself reversed: then it is held back, and recorded so that a later
   * reversal can release it. `released` is set when a reversal does exactly that.
   */
  private async credit(
    tx: Executor,
    event: RevenuecatEvent,
    decision: Extract<Decision, { action: "credit" }>,
    released = false,
  ): Promise<DeliveryResult> {
    const { userId, tokens, storeRef } = decision;
    await lockStoreTransaction(tx, storeRef);
    const refundedFirst = !released && (await isWaiting(tx, event, "CANCELLATION"));
    if (refundedFirst && !(await isWaiting(tx, event, "REFUND_REVERSED"))) {
      const reason = `${HELD_BY_REFUND}: transaction ${storeRef} was refunded before its purchase arrived`;
      return result("ignored", reason, userId);
    }
    const description = `${event.type} ${event.product_id}`;
    const credited = await this.ledger.creditPurchase(
      { userId, tokens, storeRef, description, metadata: purchaseMetadata(event) },
      { executor: tx },
    );
    const { entry } = credited;
    if (credited.status === "duplicate") {
      return result("duplicate", `transaction ${storeRef} already credited`, entry.userId, entry.id);
    }
    return { ...result("credited", `${tokens} tokens for ${event.product_id}`, userId, entry.id), tokens };
  }

  private async refund(tx: Executor, event: RevenuecatEvent, storeRef: string | null, log: Logger) {
    if (!storeRef) return result("unmatched", "no credited purchase for transaction (none)");
    await lockStoreTransaction(tx, storeRef);
    if (await isWaiting(tx, event, "REFUND_REVERSED")) {
      return result("ignored", `the refund of ${storeRef} was reversed before it arrived`);
    }
    const metadata = purchaseMetadata(event);
    const refunded = await this.ledger.refundPurchase({ storeRef, metadata }, { executor: tx });
    if (refunded.status === "no-purchase") {
      return result("unmatched", `no credited purchase for transaction ${storeRef}`);
    }
    const { entry } = refunded;
    if (refunded.status === "duplicate") {
      return result("duplicate", `transaction ${storeRef} already refunded`, entry.userId, entry.id);
    }
    const { purchase, recovered, shortfall } = refunded;
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

  private async reverse(
    tx: Executor,
    event: RevenuecatEvent,
    storeRef: string | null,
  ): Promise<DeliveryResult> {
    if (!storeRef) return result("unmatched", "no refund for transaction (none)");
    await lockStoreTransaction(tx, storeRef);
    const metadata = purchaseMetadata(event);
    const reversed = await this.ledger.reverseRefund({ storeRef, metadata }, { executor: tx });
    if (reversed.status === "reversed") {
      const { entry, refund } = reversed;
      return result("refund_reversed", `gave back ${-refund.amount} tokens`, entry.userId, entry.id);
    }
    if (reversed.status === "duplicate") {
      const { entry } = reversed;
      return result("duplicate", `refund of ${storeRef} already reversed`, entry.userId, entry.id);
    }
    // The refund came before its purchase and held it back; with the refund reversed, the purchase is
    // credited after all, and its own record says so.
    const held = await heldPurchase(tx, event);
    const decision = held ? decide(held.event, this.config) : null;
    if (!held || decision?.action !== "credit")
      return result("unmatched", `no refund for transaction ${storeRef}`);
    const credited = await this.credit(tx, held.event, decision, true);
    await finish(tx, held.eventId, credited);
    return result(
      "refund_reversed",
      `refund reversed: ${credited.detail}`,
      credited.userId,
      credited.ledgerEntryId,
    );
  }
}
