import { sql } from "drizzle-orm";
import pino from "pino";
import { expect } from "vitest";
import type { Executor } from "../../src/db/client.js";
import { queryRows } from "../../src/db/client.js";
import type { HoldSettings } from "../../src/modules/ledger/ledger.holds.js";
import { createLedgerService } from "../../src/modules/ledger/ledger.service.js";
import type { ChangeRequest } from "../../src/modules/ledger/ledger.statements.js";
import type { TestDatabase } from "../helpers/database.js";

// Holds seen from the database, for the hold tests: a service, a transaction at a chosen clock, and
// the invariants of design §B4 with holds: balance = Σ lots' remaining + Σ pins of active holds =
// Σ entries; held = Σ active holds; pinned (the balance's, and the sum of its active holds') = Σ
// their pins <= held; 0 <= held <= balance; each lot's moves add up to its remaining.

export const ledgerOf = (db: TestDatabase, holds?: Partial<HoldSettings>) =>
  createLedgerService({
    database: db.handle,
    logger: pino({ level: "silent" }),
    holds: { defaultTtlSeconds: 600, maxActivePerUser: 16, captureOverage: "REJECT", ...holds },
  });

export const owner = (userId: string) => ({ userId, admin: false });

/** A reserve as ledger_apply takes it (the service's request, without its hash), limit 16. */
export const reserveRequest = (
  userId: string,
  amount: number,
  idempotencyKey: string,
  ttlSeconds = 600,
): ChangeRequest => ({
  userId,
  delta: -amount,
  kind: "SPEND",
  description: null,
  idempotencyKey,
  op: "reserve",
  hold: { ttlSeconds, limit: 16 },
});

/** A capture of `amount` of a hold as ledger_apply takes it (overage REJECT). */
export const captureRequest = (userId: string, holdId: string, amount: number): ChangeRequest => ({
  userId,
  delta: -amount,
  kind: "SPEND",
  description: null,
  op: "capture",
  hold: { id: holdId, overage: "REJECT" },
});

/** Runs `work` in a transaction whose ledger clock is `when` (transaction-local). */
export function atClock<T>(
  db: TestDatabase,
  when: Date,
  work: (executor: Executor) => Promise<T>,
): Promise<T> {
  return db.handle.db.transaction(async (tx) => {
    await tx.execute(sql`SELECT set_config('ledger.clock', ${when.toISOString()}, true)`);
    return work(tx);
  });
}

export interface HoldSums {
  balance: number;
  held: number;
  lots: number;
  pins: number;
  pinned: number;
  holdsPinned: number;
  activeHolds: number;
  entries: number;
  badLots: number;
}

export async function holdSumsOf(executor: Executor, userId: string): Promise<HoldSums> {
  const [row] = await queryRows<Record<string, unknown>>(
    executor,
    sql`SELECT
          coalesce((SELECT balance FROM token_balances WHERE user_id = ${userId}), 0) AS balance,
          coalesce((SELECT held FROM token_balances WHERE user_id = ${userId}), 0) AS held,
          coalesce((SELECT pinned FROM token_balances WHERE user_id = ${userId}), 0) AS pinned,
          coalesce((SELECT sum(pinned) FROM token_holds WHERE user_id = ${userId} AND status = 'active'), 0)
            AS holds_pinned,
          coalesce((SELECT sum(remaining) FROM token_lots WHERE user_id = ${userId}), 0) AS lots,
          coalesce((SELECT sum(p.amount) FROM token_hold_pins p JOIN token_holds h ON h.id = p.hold_id
                     WHERE h.user_id = ${userId} AND h.status = 'active'), 0) AS pins,
          coalesce((SELECT sum(amount) FROM token_holds WHERE user_id = ${userId} AND status = 'active'), 0)
            AS active_holds,
          coalesce((SELECT sum(amount) FROM token_transactions WHERE user_id = ${userId}), 0) AS entries,
          (SELECT count(*) FROM token_lots l WHERE l.user_id = ${userId}
              AND l.remaining <> coalesce((SELECT sum(m.amount) FROM token_lot_moves m WHERE m.lot_id = l.id), 0)
              AND l.entry_id IS NOT NULL
          ) AS bad_lots`,
  );
  const n = (key: string) => Number(row?.[key]);
  return {
    balance: n("balance"),
    held: n("held"),
    lots: n("lots"),
    pins: n("pins"),
    pinned: n("pinned"),
    holdsPinned: n("holds_pinned"),
    activeHolds: n("active_holds"),
    entries: n("entries"),
    badLots: n("bad_lots"),
  };
}

/** Checks the invariants for a user; answers its balance and held. */
export async function expectHoldInvariant(
  executor: Executor,
  userId: string,
): Promise<{ balance: number; held: number }> {
  const sums = await holdSumsOf(executor, userId);
  expect(
    {
      lotsAndPins: sums.lots + sums.pins,
      entries: sums.entries,
      pinned: sums.pinned,
      holdsPinned: sums.holdsPinned,
      activeHolds: sums.activeHolds,
      badLots: sums.badLots,
    },
    `the sums of ${userId}`,
  ).toEqual({
    lotsAndPins: sums.balance,
    entries: sums.balance,
    pinned: sums.pins,
    holdsPinned: sums.pins,
    activeHolds: sums.held,
    badLots: 0,
  });
  expect(sums.pins).toBeLessThanOrEqual(sums.held);
  expect(sums.held).toBeGreaterThanOrEqual(0);
  expect(sums.balance - sums.held).toBeGreaterThanOrEqual(0);
  return { balance: sums.balance, held: sums.held };
}

export async function pinsOf(
  executor: Executor,
  holdId: string,
): Promise<{ lotId: number; amount: number }[]> {
  const rows = await queryRows<Record<string, unknown>>(
    executor,
    sql`SELECT lot_id, amount FROM token_hold_pins WHERE hold_id = ${Number(holdId)} ORDER BY lot_id`,
  );
  return rows.map((row) => ({ lotId: Number(row.lot_id), amount: Number(row.amount) }));
}
