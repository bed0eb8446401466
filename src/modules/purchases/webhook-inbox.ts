import { and, eq, inArray, type SQL, sql } from "drizzle-orm";
import { type Database, type Executor, queryRows } from "../../db/client.js";
import { revenuecatEventsTable, type WebhookOutcome } from "../../db/schema.js";
import { type RevenuecatEvent, revenuecatDeliverySchema } from "./revenuecat.event.js";

// The inbox of RevenueCat deliveries (`revenuecat_events`): every authenticated delivery is kept with
// what became of it. Claiming an event, holding a purchase back and crediting it are
// revenuecat_record's (webhook-deliveries.ts); this records a refund's or reversal's outcome or a
// failure, claims a kept event for reprocessing and finds the events to reprocess. It never touches
// the ledger.

export interface DeliveryResult {
  readonly outcome: WebhookOutcome;
  readonly detail: string;
  /** The user whose balance the event touched, after alias resolution. */
  readonly userId: string | null;
  readonly ledgerEntryId: number | null;
  /** Tokens credited, for a credit. */
  readonly tokens?: number;
  /** A credit the balance could not take (MAX_BALANCE): recorded as failed, for an operator. */
  readonly atBalanceLimit?: true;
}

export function deliveryResult(
  outcome: WebhookOutcome,
  detail: string,
  userId: string | null = null,
  ledgerEntryId: number | null = null,
): DeliveryResult {
  return { outcome, detail, userId, ledgerEntryId };
}

/** `webhooks:reprocess` picks these up (an unmapped product may be mapped now). */
export const REPROCESSABLE: readonly WebhookOutcome[] = ["failed", "unmapped"];

/** The detail of a purchase a full balance could not take (revenuecat_record writes the same words). */
export const BALANCE_LIMIT_DETAIL = "the balance would exceed its limit";

/** Records what became of an event, in the transaction that did it. */
export async function finish(tx: Executor, eventId: string, result: DeliveryResult): Promise<void> {
  await tx
    .update(revenuecatEventsTable)
    .set({
      outcome: result.outcome,
      detail: result.detail,
      userId: result.userId,
      ledgerEntryId: result.ledgerEntryId,
      processedAt: new Date(),
    })
    .where(eq(revenuecatEventsTable.eventId, eventId));
}

/** A reprocessed event that failed again (its transaction rolled back): recorded as failed, with why. */
export async function recordReprocessFailure(db: Database, eventId: string, reason: string): Promise<void> {
  await db
    .update(revenuecatEventsTable)
    .set({ outcome: "failed", detail: reason, processedAt: new Date() })
    .where(
      and(
        eq(revenuecatEventsTable.eventId, eventId),
        inArray(revenuecatEventsTable.outcome, [...REPROCESSABLE]),
      ),
    );
}

/** Records a failed attempt, outside the transaction that failed, with every column of the delivery. */
export async function recordFailure(
  db: Database,
  rawBody: string,
  event: RevenuecatEvent,
  reason: string,
): Promise<void> {
  await db
    .insert(revenuecatEventsTable)
    .values({ ...eventColumns(event, rawBody), outcome: "failed", detail: reason })
    .onConflictDoUpdate({
      target: revenuecatEventsTable.eventId,
      set: { outcome: "failed", detail: reason, processedAt: new Date(), ...refreshedColumns(sql`true`) },
      setWhere: inArray(revenuecatEventsTable.outcome, ["processing", ...REPROCESSABLE]),
    });
}

/** Event ids `reprocess` would pick up, oldest first. */
export async function reprocessable(db: Database): Promise<string[]> {
  const rows = await db
    .select({ eventId: revenuecatEventsTable.eventId })
    .from(revenuecatEventsTable)
    .where(inArray(revenuecatEventsTable.outcome, [...REPROCESSABLE]))
    .orderBy(revenuecatEventsTable.receivedAt);
  return rows.map((row) => row.eventId);
}

/** A kept event as it was delivered: its body, and the event parsed from it. */
export interface KeptEvent {
  readonly eventId: string;
  readonly rawBody: string;
  readonly event: RevenuecatEvent;
}

/**
 * Claims a kept unmapped or failed event again under its row lock, so two reprocess runs cannot both
 * apply it; returns the recorded event, or null when it is not (or no longer) reprocessable.
 */
export async function claimForReprocess(tx: Executor, eventId: string): Promise<KeptEvent | null> {
  const [claimed] = await tx
    .update(revenuecatEventsTable)
    .set({ outcome: "processing" })
    .where(
      and(
        eq(revenuecatEventsTable.eventId, eventId),
        inArray(revenuecatEventsTable.outcome, [...REPROCESSABLE]),
      ),
    )
    .returning({ rawBody: revenuecatEventsTable.rawBody });
  const event = claimed ? parseRecorded(claimed.rawBody) : null;
  return claimed && event ? { eventId, rawBody: claimed.rawBody, event } : null;
}

/**
 * Serialises all work on one store transaction: its purchase, refund and reversal may arrive at the
 * same moment, and without this neither transaction would see the other's uncommitted row. The lock
 * is transaction-scoped, so the commit or rollback releases it; its key is revenuecat_lock_key, the
 * one revenuecat_record takes for a purchase.
 */
export async function lockStoreTransaction(tx: Executor, storeRef: string): Promise<void> {
  await tx.execute(sql`SELECT pg_advisory_xact_lock(revenuecat_lock_key(${storeRef}))`);
}

/**
 * Whether an event of `type` for the same store transaction arrived before what it applies to and
 * is waiting (recorded `unmatched`): a refund before its purchase, a reversal before its refund.
 */
export async function isWaiting(
  tx: Executor,
  event: RevenuecatEvent,
  type: "CANCELLATION" | "REFUND_REVERSED",
): Promise<boolean> {
  const [row] = await queryRows<{ waiting: boolean }>(
    tx,
    sql`SELECT EXISTS (
          SELECT 1 FROM revenuecat_events
           WHERE ${sameStoreTransaction(event)} AND type = ${type} AND outcome = 'unmatched'
        ) AS waiting`,
  );
  return row?.waiting === true;
}

/** The purchase event of this store transaction that an early refund held back, if any. */
export async function heldPurchase(tx: Executor, event: RevenuecatEvent): Promise<KeptEvent | null> {
  const [row] = await queryRows<{ event_id: string; raw_body: string }>(
    tx,
    sql`SELECT event_id, raw_body FROM revenuecat_events
         WHERE ${sameStoreTransaction(event)} AND outcome = 'held'
         ORDER BY received_at LIMIT 1`,
  );
  const held = row ? parseRecorded(row.raw_body) : null;
  return row && held ? { eventId: row.event_id, rawBody: row.raw_body, event: held } : null;
}

/** What the credited purchase of this store transaction cost (its event's `price`), if known. */
export async function paidPrice(tx: Executor, event: RevenuecatEvent): Promise<number | null> {
  const [row] = await queryRows<{ raw_body: string }>(
    tx,
    sql`SELECT raw_body FROM revenuecat_events
         WHERE ${sameStoreTransaction(event)} AND outcome = 'credited'
         ORDER BY received_at LIMIT 1`,
  );
  const price = row ? parseRecorded(row.raw_body)?.price : null;
  return typeof price === "number" ? price : null;
}

function sameStoreTransaction(event: RevenuecatEvent): SQL {
  const store = event.store ?? null;
  return sql`transaction_id = ${event.transaction_id ?? null} AND (${store}::text IS NULL OR store = ${store})`;
}

function parseRecorded(rawBody: string): RevenuecatEvent | null {
  const parsed = revenuecatDeliverySchema.safeParse(JSON.parse(rawBody));
  return parsed.success ? parsed.data.event : null;
}

/**
 * The same columns under their names in the table, as revenuecat_record reads a
 * delivery: one list of what is kept of every delivery, whichever path records it.
 */
export function eventColumnsByName(event: RevenuecatEvent, rawBody: string): Record<string, unknown> {
  const columns = eventColumns(event, rawBody);
  const named: Record<string, unknown> = {};
  for (const key of Object.keys(columns) as (keyof typeof columns)[]) {
    named[revenuecatEventsTable[key].name] = columns[key];
  }
  return named;
}

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
