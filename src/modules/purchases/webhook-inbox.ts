import { and, eq, inArray, type SQL, sql } from "drizzle-orm";
import { type Database, type Executor, queryRows } from "../../db/client.js";
import { revenuecatEventsTable, type WebhookOutcome } from "../../db/schema.js";
import { type RevenuecatEvent, revenuecatDeliverySchema } from "./revenuecat.event.js";

/**
 * The inbox of RevenueCat deliveries (`revenuecat_events`): every authenticated delivery is kept with
 * what became of it. It owns claiming an event for processing, recording the outcome or a failure,
 * and finding events to reprocess. It never touches the ledger.
 */

export interface DeliveryResult {
  readonly outcome: WebhookOutcome;
  readonly detail: string;
  /** The user whose balance the event touched, after alias resolution. */
  readonly userId: string | null;
  readonly ledgerEntryId: number | null;
  /** Tokens credited, for a credit. */
  readonly tokens?: number;
}

export function deliveryResult(
  outcome: WebhookOutcome,
  detail: string,
  userId: string | null = null,
  ledgerEntryId: number | null = null,
): DeliveryResult {
  return { outcome, detail, userId, ledgerEntryId };
}

/** A later delivery of an event with this outcome processes it again (RevenueCat retries on non-200). */
const RETRYABLE: readonly WebhookOutcome[] = ["failed"];
/** `webhooks:reprocess` picks these up (an unmapped product may be mapped now). */
export const REPROCESSABLE: readonly WebhookOutcome[] = ["failed", "unmapped"];

/** Marks the detail of a purchase that its early refund held back, so a reversal can find it. */
export const HELD_BY_REFUND = "held back by its refund";

/** The detail of a purchase a full balance could not take (revenuecat_record, drizzle/0006, writes it too). */
export const BALANCE_LIMIT_DETAIL = "the balance would exceed its limit";

/**
 * Claims the event for processing, inside the caller's transaction. Concurrent deliveries of one id
 * queue on its primary key; the first, or a redelivery of one that failed, goes on (null), any other
 * is a duplicate of what was recorded.
 *
 * `xmax = 0` in RETURNING tells an INSERT from the ON CONFLICT UPDATE in one round trip: a freshly
 * inserted row version has no deleting transaction (xmax 0), while the UPDATE branch marks the old
 * version deleted by us, so its xmax is our transaction id.
 */
export async function claim(
  tx: Executor,
  rawBody: string,
  event: RevenuecatEvent,
): Promise<DeliveryResult | null> {
  const retrying = sql`${revenuecatEventsTable.outcome} IN (${sql.join(
    RETRYABLE.map((o) => sql`${o}`),
    sql`, `,
  )})`;
  const [row] = await tx
    .insert(revenuecatEventsTable)
    .values({ ...eventColumns(event, rawBody), outcome: "processing" })
    .onConflictDoUpdate({
      target: revenuecatEventsTable.eventId,
      // A retry of a failed attempt records the delivery as it is now; a processed event keeps
      // what it was processed with.
      set: { deliveries: sql`${revenuecatEventsTable.deliveries} + 1`, ...refreshedColumns(retrying) },
    })
    .returning({
      outcome: revenuecatEventsTable.outcome,
      inserted: sql<boolean>`(xmax = 0)`,
      userId: revenuecatEventsTable.userId,
      ledgerEntryId: revenuecatEventsTable.ledgerEntryId,
    });
  if (!row || row.inserted || RETRYABLE.includes(row.outcome)) return null;
  return deliveryResult("duplicate", `already processed: ${row.outcome}`, row.userId, row.ledgerEntryId);
}

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

/**
 * Claims a kept unmapped or failed event again under its row lock, so two reprocess runs cannot both
 * apply it; returns the recorded event, or null when it is not (or no longer) reprocessable.
 */
export async function claimForReprocess(tx: Executor, eventId: string): Promise<RevenuecatEvent | null> {
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
  return claimed ? parseRecorded(claimed.rawBody) : null;
}

/**
 * Serialises all work on one store transaction: its purchase, refund and reversal may arrive at the
 * same moment, and without this neither transaction would see the other's uncommitted row. The lock
 * is transaction-scoped, so the commit or rollback releases it.
 */
export async function lockStoreTransaction(tx: Executor, storeRef: string): Promise<void> {
  await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtextextended(${storeRef}, 0))`);
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

/** The purchase event of this store transaction that an early refund kept from crediting, if any. */
export async function heldPurchase(
  tx: Executor,
  event: RevenuecatEvent,
): Promise<{ eventId: string; event: RevenuecatEvent } | null> {
  const [row] = await queryRows<{ event_id: string; raw_body: string }>(
    tx,
    sql`SELECT event_id, raw_body FROM revenuecat_events
         WHERE ${sameStoreTransaction(event)} AND outcome = 'ignored' AND detail LIKE ${`${HELD_BY_REFUND}:%`}
         ORDER BY received_at LIMIT 1`,
  );
  const held = row ? parseRecorded(row.raw_body) : null;
  return row && held ? { eventId: row.event_id, event: held } : null;
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
 * The same columns under their names in the table, as revenuecat_record (drizzle/0006) reads a
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
