import { type SQL, sql } from "drizzle-orm";
import { type Database, queryRows } from "../../db/client.js";
import { revenuecatEventsTable } from "../../db/schema.js";
import { revenuecatEventSchema } from "./revenuecat.event.js";

/**
 * Retention of stored RevenueCat deliveries. A delivery's raw body carries whatever RevenueCat sends
 * about the customer (subscriber_attributes with `$email`, `$phoneNumber`, `$idfa`, the country, ...).
 * After the retention period, or at once for an erasure, the body is reduced to the event fields the
 * service acts on (revenuecatEventSchema: ids, type, product, store transaction, price), so exactly
 * once, reprocessing an unmapped event and a reversal releasing a held purchase keep working, and
 * everything else in it is gone. The row itself (event id, outcome, store transaction) stays.
 */

/** A reduced body starts with this, so a later run skips it; RevenueCat's own bodies never do. */
const REDUCED_PREFIX = '{"reduced_at":';

/** Rows reduced per transaction: short transactions, bounded memory. */
const BATCH = 200;

/** The event fields a reduced body keeps: exactly those the service reads back. */
const KEPT_EVENT_FIELDS = Object.keys(revenuecatEventSchema.shape);

export type ReductionReason = "retention" | "erasure";

/** The body kept after reduction: when and why, the API version, and the acted-on event fields. */
export function reducedBody(rawBody: string, reason: ReductionReason, now = new Date()): string {
  let delivery: { api_version?: unknown; event?: Record<string, unknown> } = {};
  try {
    delivery = JSON.parse(rawBody) as typeof delivery;
  } catch {
    // Stored bodies were valid JSON when accepted; keep nothing of one that is not.
  }
  const event: Record<string, unknown> = {};
  for (const field of KEPT_EVENT_FIELDS) {
    if (delivery.event && field in delivery.event) event[field] = delivery.event[field];
  }
  return JSON.stringify({
    reduced_at: now.toISOString(),
    reduced_for: reason,
    api_version: delivery.api_version ?? null,
    event,
  });
}

/** Reduces every stored body received before `before`; returns how many were reduced. */
export function reduceBodiesReceivedBefore(db: Database, before: Date, now = new Date()): Promise<number> {
  return reduceWhere(db, sql`received_at < ${before.toISOString()}::timestamptz`, "retention", now);
}

/**
 * Reduces at once every stored body that concerns the user: as the credited user, the app user id,
 * or anywhere in the body (an alias, original_app_user_id, a transfer's from/to), matched as the
 * JSON string RevenueCat writes.
 */
export function reduceBodiesOfUser(db: Database, userId: string, now = new Date()): Promise<number> {
  const quoted = JSON.stringify(userId);
  const concerns = sql`(user_id = ${userId} OR app_user_id = ${userId} OR strpos(raw_body, ${quoted}) > 0)`;
  return reduceWhere(db, concerns, "erasure", now);
}

/** How many stored bodies concern the user and are not reduced yet (for an erasure's dry run). */
export async function unreducedBodiesOfUser(db: Database, userId: string): Promise<number> {
  const quoted = JSON.stringify(userId);
  const [row] = await queryRows<{ count: number | string }>(
    db,
    sql`SELECT count(*) AS count FROM revenuecat_events
         WHERE (user_id = ${userId} OR app_user_id = ${userId} OR strpos(raw_body, ${quoted}) > 0)
           AND ${notReduced()}`,
  );
  return Number(row?.count ?? 0);
}

function notReduced(): SQL {
  return sql`left(raw_body, ${REDUCED_PREFIX.length}) <> ${REDUCED_PREFIX}`;
}

async function reduceWhere(db: Database, where: SQL, reason: ReductionReason, now: Date): Promise<number> {
  let reduced = 0;
  for (;;) {
    const rows = await queryRows<{ event_id: string; raw_body: string }>(
      db,
      sql`SELECT event_id, raw_body FROM revenuecat_events
           WHERE ${where} AND ${notReduced()} AND outcome <> 'processing'
           ORDER BY received_at LIMIT ${BATCH}`,
    );
    if (rows.length === 0) return reduced;
    let changed = 0;
    await db.transaction(async (tx) => {
      for (const row of rows) {
        // Only the body that was read: a redelivery that refreshed it meanwhile is reduced next round.
        const updated = await tx
          .update(revenuecatEventsTable)
          .set({ rawBody: reducedBody(row.raw_body, reason, now) })
          .where(sql`event_id = ${row.event_id} AND raw_body = ${row.raw_body}`)
          .returning({ eventId: revenuecatEventsTable.eventId });
        changed += updated.length;
      }
    });
    reduced += changed;
    // A batch that changed nothing was all taken by someone else; what is left is picked up next time.
    if (changed === 0) return reduced;
  }
}
