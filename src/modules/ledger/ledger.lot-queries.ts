import { and, asc, desc, eq, sql } from "drizzle-orm";
import { type Executor, queryRows } from "../../db/client.js";
import { type LotSource, lotsTable } from "../../db/schema.js";

/** Reads of lots (what is left of each grant of tokens and when it expires); the money function writes them. */

/** Tokens that stop being usable at one instant. */
export interface ExpiringTokens {
  readonly amount: number;
  readonly expiresAt: Date;
  /** Where the lots that expire then came from, in alphabetical order (usually one). */
  readonly sources: readonly LotSource[];
}

/** How many expiry instants a balance lists: the soonest, which is what an app shows. */
export const EXPIRING_LIST_MAX = 10;

/**
 * The user's usable tokens that will expire, soonest first, one row per expiry instant: lots with an
 * end, something left and `expires_at` still ahead (a lot is unusable from `expires_at` on; one that
 * is due but not yet swept is no longer counted, see readBalance). Held tokens are left out, as they
 * outlive their lot while their hold lasts: they are the first `held - pinned` tokens of the user's
 * lots laid end to end soonest expiry first, due lots first (their expiry pins those). Served by the
 * index token_lots_draw.
 */
export async function expiringOf(
  db: Executor,
  userId: string,
  limit = EXPIRING_LIST_MAX,
): Promise<ExpiringTokens[]> {
  const rows = await queryRows<{
    expires_at: Date | string;
    amount: number | string;
    sources: LotSource[] | string;
  }>(
    db,
    sql`SELECT e.expires_at, e.amount - least(e.amount, greatest(0, s.skip - e.lo)) AS amount, e.sources
          FROM (SELECT l.expires_at, sum(l.remaining) AS amount,
                       sum(sum(l.remaining)) OVER (ORDER BY l.expires_at) - sum(l.remaining) AS lo,
                       array_agg(DISTINCT l.source ORDER BY l.source) AS sources
                  FROM token_lots l
                 WHERE l.user_id = ${userId} AND l.open AND l.expires_at > now()
                 GROUP BY l.expires_at) AS e,
               (SELECT coalesce((SELECT b.held - b.pinned FROM token_balances b WHERE b.user_id = ${userId}), 0)
                       - coalesce((SELECT sum(d.remaining) FROM token_lots d
                                    WHERE d.user_id = ${userId} AND d.open AND d.expires_at <= now()), 0) AS skip) AS s
         WHERE e.amount > greatest(0, s.skip - e.lo)
         ORDER BY e.expires_at
         LIMIT ${limit}`,
  );
  return rows.map((row) => ({
    amount: Number(row.amount),
    expiresAt: toDate(row.expires_at),
    sources: textArray(row.sources),
  }));
}

/** One lot as an operator sees it. */
export interface Lot {
  readonly id: number;
  readonly userId: string;
  readonly source: LotSource;
  readonly sourceRef: string | null;
  readonly chainRef: string | null;
  readonly productId: string | null;
  readonly granted: number;
  readonly remaining: number;
  readonly expired: number;
  readonly startsAt: Date;
  readonly expiresAt: Date | null;
  readonly rollover: { cap: number } | null;
  readonly entryId: number | null;
  readonly createdAt: Date;
}

/**
 * A user's lots for an operator: those with tokens left in the order a spend draws them (soonest
 * expiry first, then oldest, non-expiring last), then, when asked, the empty ones newest first.
 */
export async function lotsOf(
  db: Executor,
  userId: string,
  options: { readonly limit: number; readonly includeEmpty: boolean },
): Promise<Lot[]> {
  const live = await db
    .select()
    .from(lotsTable)
    .where(and(eq(lotsTable.userId, userId), sql`${lotsTable.open}`))
    .orderBy(sql`${lotsTable.expiresAt} ASC NULLS LAST`, asc(lotsTable.id))
    .limit(options.limit);
  if (!options.includeEmpty || live.length >= options.limit) return live;
  const empty = await db
    .select()
    .from(lotsTable)
    .where(and(eq(lotsTable.userId, userId), sql`NOT ${lotsTable.open}`))
    .orderBy(desc(lotsTable.id))
    .limit(options.limit - live.length);
  return [...live, ...empty];
}

function toDate(value: Date | string): Date {
  return value instanceof Date ? value : new Date(value);
}

/** A text[] as the drivers give it: an array, or PostgreSQL's literal `{a,b}` through a raw read. */
function textArray(value: LotSource[] | string): LotSource[] {
  if (Array.isArray(value)) return value;
  return value
    .replace(/^\{|\}$/g, "")
    .split(",")
    .filter(Boolean) as LotSource[];
}
