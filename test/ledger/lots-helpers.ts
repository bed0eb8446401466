import { sql } from "drizzle-orm";
import { expect } from "vitest";
import { queryRows } from "../../src/db/client.js";
import {
  applyChanges,
  type ChangeOutcome,
  type ChangeRequest,
} from "../../src/modules/ledger/ledger.statements.js";
import type { TestDatabase } from "../helpers/database.js";

// Lots seen from the database, for the lot tests: a batch at a chosen clock, a user's lots, and the
// invariant balance = Σ lots' remaining = Σ entries (and each lot's moves add up to its remaining).

export const MAX = 1_000_000;

export interface LotRow {
  id: number;
  source: string;
  sourceRef: string | null;
  granted: number;
  remaining: number;
  expired: number;
  expiresAt: string | null;
}

/**
 * One ledger_apply batch, at `at` when given: the batch's clock is set transaction-locally
 * (set_config(..., true)), so it never outlives the transaction that uses it.
 */
export async function applyAt(
  database: TestDatabase,
  requests: readonly ChangeRequest[],
  at?: Date,
): Promise<ChangeOutcome[]> {
  return database.handle.db.transaction(async (tx) => {
    if (at) await tx.execute(sql`SELECT set_config('ledger.clock', ${at.toISOString()}, true)`);
    return applyChanges(tx, requests);
  });
}

export async function lotsOf(database: TestDatabase, userId: string): Promise<LotRow[]> {
  const rows = await queryRows<Record<string, unknown>>(
    database.handle.db,
    sql`SELECT id, source, source_ref, granted, remaining, expired, expires_at
          FROM token_lots WHERE user_id = ${userId} ORDER BY id`,
  );
  return rows.map((row) => ({
    id: Number(row.id),
    source: String(row.source),
    sourceRef: (row.source_ref as string | null) ?? null,
    granted: Number(row.granted),
    remaining: Number(row.remaining),
    expired: Number(row.expired),
    expiresAt: row.expires_at == null ? null : new Date(row.expires_at as string).toISOString(),
  }));
}

export interface Sums {
  balance: number;
  lots: number;
  entries: number;
  badLots: number;
}

/** The three sums for a user, and how many of its lots' moves do not add up to their remaining. */
export async function sumsOf(database: TestDatabase, userId: string): Promise<Sums> {
  const [row] = await queryRows<Record<string, unknown>>(
    database.handle.db,
    sql`SELECT
          coalesce((SELECT balance FROM token_balances WHERE user_id = ${userId}), 0) AS balance,
          coalesce((SELECT sum(remaining) FROM token_lots WHERE user_id = ${userId}), 0) AS lots,
          coalesce((SELECT sum(amount) FROM token_transactions WHERE user_id = ${userId}), 0) AS entries,
          (SELECT count(*) FROM token_lots l WHERE l.user_id = ${userId} AND l.entry_id IS NOT NULL
              AND l.remaining <> coalesce((SELECT sum(m.amount) FROM token_lot_moves m WHERE m.lot_id = l.id), 0)
          ) AS bad_lots`,
  );
  return {
    balance: Number(row?.balance),
    lots: Number(row?.lots),
    entries: Number(row?.entries),
    badLots: Number(row?.bad_lots),
  };
}

export async function expectConsistent(database: TestDatabase, userId: string): Promise<number> {
  const sums = await sumsOf(database, userId);
  expect(sums, `the sums of ${userId}`).toEqual({
    balance: sums.balance,
    lots: sums.balance,
    entries: sums.balance,
    badLots: 0,
  });
  expect(sums.balance).toBeGreaterThanOrEqual(0);
  return sums.balance;
}

export async function entriesOf(
  database: TestDatabase,
  userId: string,
): Promise<{ kind: string; amount: number; metadata: Record<string, unknown> | null }[]> {
  const rows = await queryRows<Record<string, unknown>>(
    database.handle.db,
    sql`SELECT kind, amount, metadata FROM token_transactions WHERE user_id = ${userId} ORDER BY id`,
  );
  return rows.map((row) => ({
    kind: String(row.kind),
    amount: Number(row.amount),
    metadata: (row.metadata as Record<string, unknown> | null) ?? null,
  }));
}

/** A user's entries' lot moves, in entry order: [entry amount, lot source, lot's granted, move]. */
export async function movesOf(
  database: TestDatabase,
  userId: string,
): Promise<[number, string, number, number][]> {
  const rows = await queryRows<Record<string, unknown>>(
    database.handle.db,
    sql`SELECT t.amount AS entry, l.source, l.granted, m.amount AS moved
          FROM token_lot_moves m JOIN token_transactions t ON t.id = m.entry_id JOIN token_lots l ON l.id = m.lot_id
         WHERE t.user_id = ${userId} ORDER BY t.id, m.id`,
  );
  return rows.map((row) => [Number(row.entry), String(row.source), Number(row.granted), Number(row.moved)]);
}

export const DAY = 86_400_000;
export const at = (base: Date, days: number) => new Date(base.getTime() + days * DAY);

export const grant = (userId: string, amount: number): ChangeRequest => ({
  userId,
  delta: amount,
  kind: "GRANT",
  description: null,
});
export const spend = (userId: string, amount: number): ChangeRequest => ({
  userId,
  delta: -amount,
  kind: "SPEND",
  description: null,
});
/** A subscription period's credit: a lot from `starts` to `ends`. */
export const period = (
  userId: string,
  amount: number,
  ref: string,
  starts: Date,
  ends: Date,
  more: Partial<NonNullable<ChangeRequest["lot"]>> = {},
): ChangeRequest => ({
  userId,
  delta: amount,
  kind: "PURCHASE",
  description: null,
  externalRef: ref,
  lot: { source: "period", ref, chain: "chain", startsAt: starts, expiresAt: ends, ...more },
});
export const pack = (userId: string, amount: number, ref: string): ChangeRequest => ({
  userId,
  delta: amount,
  kind: "PURCHASE",
  description: null,
  externalRef: ref,
  lot: { ref },
});
export const refund = (userId: string, ref: string, ratio?: number, delta = 0): ChangeRequest => ({
  userId,
  delta,
  kind: "REFUND",
  description: null,
  externalRef: ref,
  op: "refund",
  lot: { ref },
  ...(ratio !== undefined ? { ratio } : {}),
});
export const reverse = (userId: string, ref: string): ChangeRequest => ({
  userId,
  delta: 0,
  kind: "REFUND_REVERSAL",
  description: null,
  externalRef: ref,
  op: "reverse_refund",
});
export const expireOp = (userId: string): ChangeRequest => ({
  userId,
  delta: 0,
  kind: "EXPIRE",
  description: null,
  op: "expire",
});
