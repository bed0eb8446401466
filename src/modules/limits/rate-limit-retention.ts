import { sql } from "drizzle-orm";
import { type Database, queryRows } from "../../db/client.js";

/**
 * Retention of the database store's rate-limit counters (`rate_limits`): `authfail:<address>` and
 * `webhookauthfail:<address>` hold client addresses, `spend:<user>` a user id. A counter is useless
 * once its window has ended; it is kept `retention` longer (to look into an incident), then deleted.
 * Redis counters expire by themselves.
 */

/** Deletes counters whose window ended before `before`; returns how many. */
export async function deleteCountersExpiredBefore(db: Database, before: Date): Promise<number> {
  const [row] = await queryRows<{ count: number | string }>(
    db,
    sql`WITH gone AS (DELETE FROM rate_limits WHERE expire < ${before.toISOString()}::timestamptz RETURNING 1)
        SELECT count(*) AS count FROM gone`,
  );
  return Number(row?.count ?? 0);
}

/** Deletes the user's own counters (an erasure); the limit starts afresh, which costs nothing. */
export async function deleteCountersOfUser(db: Database, userId: string): Promise<number> {
  const [row] = await queryRows<{ count: number | string }>(
    db,
    sql`WITH gone AS (DELETE FROM rate_limits WHERE key = ${`spend:${userId}`} RETURNING 1)
        SELECT count(*) AS count FROM gone`,
  );
  return Number(row?.count ?? 0);
}
