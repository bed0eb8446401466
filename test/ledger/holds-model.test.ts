import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Executor, queryRows } from "../../src/db/client.js";
import type { HoldStatus, LedgerService } from "../../src/modules/ledger/ledger.service.js";
import { applyChanges } from "../../src/modules/ledger/ledger.statements.js";
import { driverName, type TestDatabase, useTestDatabase } from "../helpers/database.js";
import { atClock, expectHoldInvariant, ledgerOf, owner } from "./holds-helpers.js";
import { grant, period } from "./lots-helpers.js";

// Holds under random steps (the credits issue's property test, extended with holds): grants,
// expiring period lots, spends, reserves, captures (below and above the hold, REJECT or CAP),
// releases, the sweeper's expire_hold and cuts of a period lot to a past end, at a clock that moves
// forward (ledger.clock). A small model of the holds' state machine (expire on touch at the TTL,
// capture once, release replays, ...) predicts every hold outcome; after every step each user keeps
// balance = Σ lots' remaining + Σ active pins = Σ entries, 0 <= held <= balance, held = Σ of its
// active holds, pinned = Σ active pins <= held. Lots that end while tokens of them are held (by
// their time or a cut) pin those tokens; the first property checks that some did. A second property
// runs the same operations from concurrent workers through the group commit at the real clock.

const database = useTestDatabase();
const HOUR = 3_600_000;
const LIMIT = 3;

type Step =
  | { t: "grant" | "period" | "spend"; user: number; amount: number }
  | { t: "cut"; user: number }
  | { t: "reserve"; user: number; amount: number; ttl: number }
  | { t: "capture"; hold: number; amount: number; cap: boolean }
  | { t: "release" | "sweep"; hold: number }
  | { t: "advance"; ms: number };

const user = fc.integer({ min: 0, max: 1 });
const amount = fc.integer({ min: 1, max: 120 });
const hold = fc.integer({ min: 0, max: 7 });
const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ t: fc.constantFrom("grant" as const, "period" as const, "spend" as const), user, amount }),
  fc.record({
    t: fc.constant("reserve" as const),
    user,
    amount: fc.integer({ min: 1, max: 60 }),
    ttl: fc.constantFrom(60, 1800, 7200),
  }),
  fc.record({
    t: fc.constant("capture" as const),
    hold,
    amount: fc.integer({ min: 0, max: 150 }),
    cap: fc.boolean(),
  }),
  fc.record({ t: fc.constantFrom("release" as const, "sweep" as const), hold }),
  fc.record({ t: fc.constant("cut" as const), user }),
  fc.record({ t: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 2 * HOUR }) }),
);

interface ModelHold {
  id: string;
  userId: string;
  amount: number;
  expiresAt: number;
  status: HoldStatus;
  requested: number | null;
}

/** The holds' state machine: every operation on a user first ends its holds past their TTL. */
class HoldModel {
  readonly holds: ModelHold[] = [];
  /** Each user's newest period lot, which a cut ends. */
  readonly periods = new Map<string, string>();
  touch(userId: string, clock: number) {
    for (const h of this.holds)
      if (h.userId === userId && h.status === "active" && h.expiresAt <= clock) h.status = "expired";
  }
  active(userId: string) {
    return this.holds.filter((h) => h.userId === userId && h.status === "active");
  }
}

async function step(
  ledger: LedgerService,
  model: HoldModel,
  run: string,
  s: Step,
  clock: number,
  executor: Executor,
): Promise<void> {
  const userOf = (n: number) => `${run}-u${n}`;
  const options = { executor };
  if (s.t === "grant" || s.t === "period" || s.t === "spend") {
    const u = userOf(s.user);
    model.touch(u, clock);
    const ref = `${run}:${randomUUID()}`;
    if (s.t === "period") model.periods.set(u, ref);
    const request =
      s.t === "grant"
        ? grant(u, s.amount)
        : s.t === "period"
          ? period(u, s.amount, ref, new Date(clock), new Date(clock + 3 * HOUR))
          : { userId: u, delta: -s.amount, kind: "SPEND" as const, description: null };
    await applyChanges(executor, [request]);
    return;
  }
  if (s.t === "cut") {
    const u = userOf(s.user);
    const ref = model.periods.get(u);
    if (!ref) return;
    model.touch(u, clock);
    const [outcome] = await applyChanges(executor, [
      {
        userId: u,
        delta: 0,
        kind: "EXPIRE",
        description: null,
        op: "cut",
        lot: { ref, expiresAt: new Date(clock) },
      },
    ]);
    expect(["lot_changed", "unchanged"]).toContain(outcome?.status);
    return;
  }
  if (s.t === "reserve") {
    const u = userOf(s.user);
    model.touch(u, clock);
    const result = await ledger.reserve(
      u,
      { amount: s.amount, ttlSeconds: s.ttl, idempotencyKey: randomUUID() },
      options,
    );
    if (model.active(u).length >= LIMIT) {
      expect(result).toEqual({ status: "too_many_holds", limit: LIMIT });
    } else if (result.status === "reserved") {
      expect(result.hold.expiresAt.getTime()).toBe(clock + s.ttl * 1000);
      model.holds.push({ ...result.hold, expiresAt: clock + s.ttl * 1000, requested: null });
    } else {
      expect(result.status).toBe("insufficient");
      if (result.status === "insufficient") expect(result.available).toBeLessThan(s.amount);
    }
    return;
  }
  if (s.t !== "capture" && s.t !== "release" && s.t !== "sweep") return;
  const h = model.holds[s.hold % Math.max(1, model.holds.length)];
  if (!h) return;
  const before = h.status;
  model.touch(h.userId, clock);
  if (s.t === "capture") {
    const result = await ledger.capture(
      h.id,
      { amount: s.amount, overage: s.cap ? "CAP" : "REJECT" },
      owner(h.userId),
      options,
    );
    const expected =
      h.status === "captured"
        ? h.requested === s.amount
          ? "captured"
          : "hold_already_captured"
        : h.status === "released"
          ? "hold_released"
          : h.status === "expired"
            ? "hold_expired"
            : s.amount > h.amount && !s.cap
              ? "amount_exceeds_hold"
              : "captured";
    expect(result.status).toBe(expected);
    if (result.status === "captured" && h.status === "active") {
      expect(result.replayed).toBe(false);
      expect(-result.entry.amount + result.shortfall).toBe(s.amount);
      h.status = "captured";
      h.requested = s.amount;
    }
  } else if (s.t === "release") {
    const result = await ledger.release(h.id, owner(h.userId), options);
    expect(result.status).toBe(h.status === "captured" ? "hold_already_captured" : "released");
    if (result.status === "released") expect(result.replayed).toBe(h.status !== "active");
    if (h.status === "active") h.status = "released";
  } else {
    const [outcome] = await applyChanges(executor, [
      { userId: h.userId, delta: 0, kind: "SPEND", description: null, op: "expire_hold", hold: { id: h.id } },
    ]);
    // The sweeper's request counts an expiry when its own batch's touch step did it.
    const expected =
      before === "active"
        ? h.status === "expired"
          ? "hold_expired"
          : "unchanged"
        : before === "captured"
          ? "hold_already_captured"
          : "hold_closed";
    expect(outcome?.status).toBe(expected);
  }
}

async function checkAll(db: TestDatabase, model: HoldModel, run: string) {
  for (const n of [0, 1]) {
    const u = `${run}-u${n}`;
    const { held } = await expectHoldInvariant(db.handle.db, u);
    expect(held).toBe(model.active(u).reduce((sum, h) => sum + h.amount, 0));
  }
  const ledger = ledgerOf(db);
  for (const h of model.holds)
    expect((await ledger.holdOf(h.id, { userId: "", admin: true }))?.status, `hold ${h.id}`).toBe(h.status);
}

describe(`holds under random steps on ${driverName}`, () => {
  it("a moving clock: the model predicts every hold outcome, and the invariants hold after every step", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(stepArbitrary, { minLength: 5, maxLength: 40, size: "large" }),
        async (steps) => {
          const db = database.current();
          const ledger = ledgerOf(db, { maxActivePerUser: LIMIT });
          const model = new HoldModel();
          const run = randomUUID();
          let clock = Date.parse("2033-01-01T00:00:00.000Z");
          // Both users start with tokens, so that most reserves succeed and their holds get resolved.
          const start: Step[] = [0, 1].flatMap((u): Step[] => [
            { t: "grant", user: u, amount: 300 },
            { t: "period", user: u, amount: 100 },
          ]);
          for (const s of [...start, ...steps]) {
            if (s.t === "advance") {
              clock += s.ms;
              continue;
            }
            await atClock(db, new Date(clock), (executor) => step(ledger, model, run, s, clock, executor));
            await checkAll(db, model, run);
          }
        },
      ),
      { numRuns: Number(process.env.HOLDS_MODEL_RUNS ?? 25) },
    );
    // Some lot ended while tokens of it were held (its `hold` move is the pin).
    const [pinned] = await queryRows<{ n: number | string }>(
      database.current().handle.db,
      sql`SELECT count(*) AS n FROM token_lot_moves WHERE reason = 'hold'`,
    );
    expect(Number(pinned?.n)).toBeGreaterThan(0);
  });

  it("concurrent workers through the group commit at the real clock keep the invariants after every round", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(stepArbitrary, { minLength: 1, maxLength: 10 }), { minLength: 1, maxLength: 3 }),
        async (rounds) => {
          const db = database.current();
          const ledger = ledgerOf(db, { maxActivePerUser: LIMIT });
          const run = randomUUID();
          const ids: { id: string; userId: string }[] = [];
          for (const u of [0, 1])
            await ledger.grant({ userId: `${run}-u${u}`, amount: 300, reason: "start" }, "model");
          for (const round of rounds) {
            await Promise.all(round.map((s) => concurrentStep(ledger, run, s, ids)));
            for (const n of [0, 1]) await expectHoldInvariant(db.handle.db, `${run}-u${n}`);
          }
        },
      ),
      { numRuns: Number(process.env.HOLDS_MODEL_RUNS ?? 15) },
    );
  });
});

async function concurrentStep(
  ledger: LedgerService,
  run: string,
  s: Step,
  ids: { id: string; userId: string }[],
): Promise<unknown> {
  const userOf = (n: number) => `${run}-u${n}`;
  const pick = (n: number) => ids[n % Math.max(1, ids.length)];
  switch (s.t) {
    case "grant":
    case "period":
      return ledger.grant({ userId: userOf(s.user), amount: s.amount, reason: "test" }, "model");
    case "spend":
      return ledger.spend(userOf(s.user), { amount: s.amount, description: "test" }).catch(() => null);
    case "reserve": {
      // TTLs of a second or less, so holds also expire by the clock while the round runs.
      const result = await ledger.reserve(userOf(s.user), {
        amount: s.amount,
        ttlSeconds: 1,
        idempotencyKey: randomUUID(),
      });
      if (result.status === "reserved") ids.push(result.hold);
      return result;
    }
    case "capture": {
      const h = pick(s.hold);
      return (
        h && ledger.capture(h.id, { amount: s.amount, overage: s.cap ? "CAP" : "REJECT" }, owner(h.userId))
      );
    }
    case "release": {
      const h = pick(s.hold);
      return h && ledger.release(h.id, owner(h.userId));
    }
    case "sweep":
      return ledger.expireHolds(ids.slice(0, 4));
    case "cut":
      return null;
    case "advance":
      return new Promise((resolve) => setTimeout(resolve, Math.min(300, s.ms / 10_000)));
  }
}
