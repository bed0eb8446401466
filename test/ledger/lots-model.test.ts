import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { queryRows } from "../../src/db/client.js";
import { isReferenceRace } from "../../src/modules/ledger/ledger.errors.js";
import {
  APPLY_STATEMENT,
  type ChangeOutcome,
  type ChangeRequest,
  decodeOutcomes,
  encodeRequests,
  type OutcomeRow,
} from "../../src/modules/ledger/ledger.statements.js";
import { driverName, type TestDatabase, useTestDatabase } from "../helpers/database.js";
import { expectConsistent, lotsOf } from "./lots-helpers.js";
import { LedgerModel, type ModelOutcome } from "./reference-model.js";

// ledger_apply with lots against its reference model: random batches of grants, packs, renewals
// (credits that expire, some born expired, some with rollover or superseding), spends, refunds with
// a ratio, their reversals, extensions, cuts and expiries, at a clock that moves forward between
// batches (ledger.clock, set for the batch's transaction only). After every batch the outcomes, each
// user's lots and the invariant balance = Σ lots' remaining = Σ entries ≥ 0 must hold. A second
// property runs such changes concurrently, at the real clock, and checks the invariant each round.

const database = useTestDatabase();
const MAX = 1000;
const DAY = 86_400_000;

type Op =
  | { t: "grant" | "spend"; user: number; amount: number }
  | { t: "pack"; user: number; amount: number; slot: number }
  | {
      t: "renew";
      user: number;
      amount: number;
      slot: number;
      start: number;
      length: number;
      rollover: boolean;
      supersede: boolean;
    }
  | { t: "refund"; user: number; slot: number; ratio: number }
  | { t: "reverse"; user: number; slot: number }
  | { t: "expire"; user: number }
  | { t: "extend" | "cut"; slot: number; days: number };

const user = fc.integer({ min: 0, max: 2 });
const slot = fc.integer({ min: 0, max: 4 });
const amount = fc.integer({ min: 1, max: 300 });
const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constantFrom("grant" as const, "spend" as const), user, amount }),
  fc.record({ t: fc.constant("pack" as const), user, amount, slot }),
  fc.record({
    t: fc.constant("renew" as const),
    user,
    amount,
    slot,
    start: fc.integer({ min: -40, max: 0 }),
    length: fc.integer({ min: 1, max: 40 }),
    rollover: fc.boolean(),
    supersede: fc.boolean(),
  }),
  fc.record({ t: fc.constant("refund" as const), user, slot, ratio: fc.constantFrom(1, 0.5, 0.3) }),
  fc.record({ t: fc.constant("reverse" as const), user, slot }),
  fc.record({ t: fc.constant("expire" as const), user }),
  fc.record({
    t: fc.constantFrom("extend" as const, "cut" as const),
    slot,
    days: fc.integer({ min: -10, max: 40 }),
  }),
);
const stepsArbitrary = fc.array(
  fc.record({
    advance: fc.integer({ min: 0, max: 20 * DAY }),
    batch: fc.array(opArbitrary, { minLength: 1, maxLength: 6 }),
  }),
  { minLength: 1, maxLength: 8 },
);

function toRequest(run: string, clock: number, op: Op): ChangeRequest {
  const base = { description: null } as const;
  switch (op.t) {
    case "grant":
      return { ...base, userId: `${run}-u${op.user}`, delta: op.amount, kind: "GRANT" };
    case "spend":
      return { ...base, userId: `${run}-u${op.user}`, delta: -op.amount, kind: "SPEND" };
    case "pack":
      return {
        ...base,
        userId: `${run}-u${op.user}`,
        delta: op.amount,
        kind: "PURCHASE",
        externalRef: `${run}-s${op.slot}`,
        lot: { ref: `${run}-s${op.slot}` },
      };
    case "renew": {
      const startsAt = new Date(clock + op.start * DAY);
      return {
        ...base,
        userId: `${run}-u${op.user}`,
        delta: op.amount,
        kind: "PURCHASE",
        externalRef: `${run}-s${op.slot}`,
        lot: {
          source: "period",
          ref: `${run}-s${op.slot}`,
          chain: `${run}-chain${op.user}`,
          startsAt,
          expiresAt: new Date(startsAt.getTime() + op.length * DAY),
          rollover: op.rollover ? { cap: 100 } : null,
          supersede: op.supersede,
        },
      };
    }
    case "refund":
      return {
        ...base,
        userId: `${run}-u${op.user}`,
        delta: -50,
        kind: "REFUND",
        op: "refund",
        externalRef: `${run}-s${op.slot}`,
        lot: { ref: `${run}-s${op.slot}` },
        ratio: op.ratio,
      };
    case "reverse":
      return {
        ...base,
        userId: `${run}-u${op.user}`,
        delta: 0,
        kind: "REFUND_REVERSAL",
        op: "reverse_refund",
        externalRef: `${run}-s${op.slot}`,
      };
    case "expire":
      return { ...base, userId: `${run}-u${op.user}`, delta: 0, kind: "EXPIRE", op: "expire" };
    case "extend":
    case "cut":
      return {
        ...base,
        userId: `${run}-nobody`,
        delta: 0,
        kind: "EXPIRE",
        op: op.t,
        lot: { ref: `${run}-s${op.slot}`, expiresAt: new Date(clock + op.days * DAY) },
      };
  }
}

/** What the model can know of an outcome (not ids or times). */
function comparable(outcome: ChangeOutcome): ModelOutcome {
  switch (outcome.status) {
    case "applied":
      return {
        status: "applied",
        userId: outcome.entry.userId,
        amount: outcome.entry.amount,
        balanceAfter: outcome.entry.balanceAfter,
        version: outcome.entry.balanceVersion,
      };
    case "replay":
      return {
        status: "replay",
        userId: outcome.entry.userId,
        amount: outcome.entry.amount,
        available: outcome.available,
        requestHash: outcome.requestHash,
      };
    case "duplicate":
      return { status: "duplicate", userId: outcome.entry.userId, amount: outcome.entry.amount };
    case "insufficient":
    case "limit":
    case "rate_limited":
      return { status: outcome.status, available: outcome.available };
    case "expired":
    case "lot_changed":
    case "unchanged":
    case "no_lot":
      return { status: outcome.status, available: outcome.available, expired: outcome.expired };
    default:
      throw new Error(`a lot change answered ${outcome.status}`);
  }
}

async function applyAtClock(db: TestDatabase, requests: readonly ChangeRequest[], clock: number) {
  return db.handle.db.transaction(async (tx) => {
    await tx.execute(sql`SELECT set_config('ledger.clock', ${new Date(clock).toISOString()}, true)`);
    const rows = await queryRows<OutcomeRow>(
      tx,
      sql`SELECT * FROM ledger_apply(${encodeRequests(requests)}::jsonb, ${MAX}::integer)`,
    );
    return decodeOutcomes(rows, requests.length);
  });
}

describe(`lots in ledger_apply against the reference model on ${driverName}`, () => {
  it("random batches at a moving clock give the same outcomes and lots, and keep balance = Σ lots = Σ entries", async () => {
    await fc.assert(
      fc.asyncProperty(stepsArbitrary, async (steps) => {
        const db = database.current();
        const run = randomUUID();
        const model = new LedgerModel(MAX);
        let clock = Date.parse("2032-01-01T00:00:00.000Z");
        for (const { advance, batch } of steps) {
          clock += advance;
          const requests = batch.map((op) => toRequest(run, clock, op));
          const actual = (await applyAtClock(db, requests, clock)).map(comparable);
          expect(actual).toEqual(model.apply(requests, clock));
          for (const u of [0, 1, 2]) {
            const userId = `${run}-u${u}`;
            const lots = (await lotsOf(db, userId)).map((lot) => [
              lot.source,
              lot.remaining,
              lot.expired,
              lot.expiresAt,
            ]);
            const expected = model
              .lotsOf(userId)
              .map((lot) => [
                lot.source,
                lot.remaining,
                lot.expired,
                lot.expiresAt === null ? null : new Date(lot.expiresAt).toISOString(),
              ]);
            expect(lots, userId).toEqual(expected);
            expect(await expectConsistent(db, userId)).toBe(model.balanceOf(userId));
          }
        }
      }),
      { numRuns: Number(process.env.LOTS_MODEL_RUNS ?? 40) },
    );
  });

  it("concurrent changes at the real clock, lots expiring meanwhile, keep the invariant after every round", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(opArbitrary, { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 4 }),
        async (rounds) => {
          const db = database.current();
          const run = randomUUID();
          for (const round of rounds) {
            const now = Date.now();
            // Each change its own statement, all at once; renewals end within a second or so.
            await Promise.all(
              round.map((op) => {
                const request =
                  op.t === "renew"
                    ? toRequest(run, now, { ...op, start: 0, length: 1 })
                    : toRequest(run, now, op);
                const lot = request.lot;
                const timed =
                  op.t === "renew" && lot
                    ? {
                        ...request,
                        lot: { ...lot, startsAt: new Date(now), expiresAt: new Date(now + op.amount * 3) },
                      }
                    : request;
                // Two users' credits of one store reference can race; the statement then fails
                // whole and the writer runs it again (isReferenceRace): so does this.
                const write = () =>
                  db.handle.query<OutcomeRow>(APPLY_STATEMENT, [encodeRequests([timed]), MAX]);
                return write().catch((error: unknown) => {
                  if (isReferenceRace(error)) return write();
                  throw error;
                });
              }),
            );
            for (const u of [0, 1, 2]) await expectConsistent(db, `${run}-u${u}`);
            await new Promise((resolve) => setTimeout(resolve, 150));
          }
        },
      ),
      { numRuns: Number(process.env.LOTS_MODEL_CONCURRENT_RUNS ?? 15) },
    );
  });
});
