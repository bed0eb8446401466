import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { MAX_BALANCE } from "../../src/db/schema.js";
import { driverName, useTestDatabase } from "../helpers/database.js";
import {
  applyAt,
  at,
  entriesOf,
  expectConsistent,
  expireOp,
  grant,
  lotsOf,
  movesOf,
  pack,
  period,
  spend,
} from "./lots-helpers.js";

// Lots in ledger_apply: the golden rows of design §E (credits-and-holds.md) that the money function
// decides alone. Each test names its row; each runs at a clock of its own (ledger.clock, set for
// its transaction only) and ends by checking balance = Σ lots' remaining = Σ entries.

const database = useTestDatabase();
const T0 = new Date("2031-01-01T00:00:00.000Z");
const user = () => `lots-${randomUUID()}`;

describe(`lots in ledger_apply on ${driverName}`, () => {
  it("row 29: a spend takes the soonest-expiring lot first, ties by lot id, non-expiring last", async () => {
    const db = database.current();
    const u = user();
    await applyAt(
      db,
      [
        grant(u, 100),
        period(u, 10, `${u}:late`, T0, at(T0, 30)),
        period(u, 10, `${u}:soon-a`, T0, at(T0, 10)),
        period(u, 10, `${u}:soon-b`, T0, at(T0, 10)),
      ],
      T0,
    );
    const [spent] = await applyAt(db, [spend(u, 25)], at(T0, 1));
    expect(spent?.status).toBe("applied");
    const lots = await lotsOf(db, u);
    expect(lots.map((lot) => [lot.source, lot.remaining])).toEqual([
      ["grant", 100],
      ["period", 5],
      ["period", 0],
      ["period", 0],
    ]);
    await applyAt(db, [spend(u, 10)], at(T0, 1));
    expect((await lotsOf(db, u)).map((lot) => lot.remaining)).toEqual([95, 0, 0, 0]);
    expect(await expectConsistent(db, u)).toBe(95);
  });

  it("row 29 in one batch: a user's spends draw in arrival order, from the first lot while it covers them, then on into the next", async () => {
    const db = database.current();
    const u = user();
    await applyAt(db, [grant(u, 100), period(u, 10, `${u}:p`, T0, at(T0, 10))], T0);
    // 3 + 4 fit the period's 10: only it moves. Then 2 + 5 outgrow the 3 left: the 5 takes 1 and 4.
    await applyAt(db, [spend(u, 3), spend(u, 4)], at(T0, 1));
    await applyAt(db, [spend(u, 2), spend(u, 5)], at(T0, 1));
    expect((await movesOf(db, u)).filter(([entry]) => entry < 0)).toEqual([
      [-3, "period", 10, -3],
      [-4, "period", 10, -4],
      [-2, "period", 10, -2],
      [-5, "period", 10, -1],
      [-5, "grant", 100, -4],
    ]);
    expect((await lotsOf(db, u)).map((lot) => lot.remaining)).toEqual([96, 0]);
    expect(await expectConsistent(db, u)).toBe(96);
  });

  it("row 30: at exactly expires_at the lot is unusable (half-open), so a spend it would cover is refused", async () => {
    const db = database.current();
    const u = user();
    await applyAt(db, [period(u, 50, `${u}:p1`, T0, at(T0, 30))], T0);
    const justBefore = new Date(at(T0, 30).getTime() - 1);
    const [early] = await applyAt(db, [spend(u, 10)], justBefore);
    expect(early?.status).toBe("applied");
    const [onTheEnd] = await applyAt(db, [spend(u, 10)], at(T0, 30));
    expect(onTheEnd).toEqual({ status: "insufficient", available: 0 });
    const kinds = (await entriesOf(db, u)).map((entry) => [entry.kind, entry.amount]);
    expect(kinds).toEqual([
      ["PURCHASE", 50],
      ["SPEND", -10],
      ["EXPIRE", -40],
    ]);
    expect(await expectConsistent(db, u)).toBe(0);
  });

  it("row 31: a due, unswept lot is expired by the touch step in the same statement, before the spend", async () => {
    const db = database.current();
    const u = user();
    await applyAt(db, [grant(u, 5), period(u, 50, `${u}:p1`, T0, at(T0, 30))], T0);
    const [outcome] = await applyAt(db, [spend(u, 5)], at(T0, 31));
    expect(outcome?.status).toBe("applied");
    if (outcome?.status !== "applied") return;
    // The EXPIRE came first: the spend's balance_after is 0, one version above the EXPIRE's.
    expect(outcome.entry.balanceAfter).toBe(0);
    const entries = await entriesOf(db, u);
    expect(entries.map((entry) => [entry.kind, entry.amount])).toEqual([
      ["GRANT", 5],
      ["PURCHASE", 50],
      ["EXPIRE", -50],
      ["SPEND", -5],
    ]);
    expect(entries[2]?.metadata).toMatchObject({ reason: "expired", source: "period" });
    expect(await expectConsistent(db, u)).toBe(0);
  });

  it("row 32 (ledger part): an expire request writes the EXPIRE entry and says how much it expired; again, nothing", async () => {
    const db = database.current();
    const u = user();
    await applyAt(db, [grant(u, 7), period(u, 50, `${u}:p1`, T0, at(T0, 30))], T0);
    const [first] = await applyAt(db, [expireOp(u)], at(T0, 30));
    expect(first).toEqual({ status: "expired", available: 7, expired: 50 });
    const [second] = await applyAt(db, [expireOp(u)], at(T0, 31));
    expect(second).toEqual({ status: "expired", available: 7, expired: 0 });
    expect(await expectConsistent(db, u)).toBe(7);
  });

  it("row 33: a lot with rollover (cap 500, 800 left, 200 already rolled over) carries 300 and expires 500", async () => {
    const db = database.current();
    const u = user();
    const chain = { chain: `${u}:chain`, rollover: { cap: 500 } };
    // The first period rolls 200 over (cap 500, 200 left); the second has 800 left at its end.
    await applyAt(db, [period(u, 1000, `${u}:p1`, T0, at(T0, 30), chain)], T0);
    await applyAt(db, [spend(u, 800)], at(T0, 1));
    // The second period ends a day before the first rollover lot does (day 59 and day 60).
    await applyAt(db, [period(u, 1000, `${u}:p2`, at(T0, 29), at(T0, 59), chain)], at(T0, 29));
    await applyAt(db, [expireOp(u)], at(T0, 30));
    expect((await lotsOf(db, u)).map((lot) => [lot.source, lot.remaining])).toEqual([
      ["period", 0],
      ["period", 1000],
      ["rollover", 200],
    ]);
    await applyAt(db, [spend(u, 200)], at(T0, 31));
    const [swept] = await applyAt(db, [expireOp(u)], at(T0, 59));
    expect(swept).toMatchObject({ status: "expired", expired: 500, available: 500 });
    const lots = await lotsOf(db, u);
    expect(lots.map((lot) => [lot.source, lot.remaining, lot.expired])).toEqual([
      ["period", 0, 0],
      ["period", 0, 500],
      ["rollover", 200, 0],
      ["rollover", 300, 0],
    ]);
    expect(lots[3]?.expiresAt).toBe(at(T0, 89).toISOString());
    const expires = (await entriesOf(db, u)).filter((entry) => entry.kind === "EXPIRE");
    expect(expires.map((entry) => entry.amount)).toEqual([-500]);
    expect(await expectConsistent(db, u)).toBe(500);
  });

  it("row 35: a credit that would pass the limit is refused and opens no lot", async () => {
    const db = database.current();
    const u = user();
    await applyAt(db, [grant(u, MAX_BALANCE - 10)], T0);
    const [refused] = await applyAt(db, [period(u, 11, `${u}:p1`, T0, at(T0, 30))], T0);
    expect(refused).toEqual({ status: "limit", available: MAX_BALANCE - 10 });
    expect(await lotsOf(db, u)).toHaveLength(1);
    expect(await expectConsistent(db, u)).toBe(MAX_BALANCE - 10);
  });

  it("row 3: a renewal before the old period's end: both lots live, spends take the old one first, its rest expires at its end", async () => {
    const db = database.current();
    const u = user();
    await applyAt(db, [period(u, 100, `${u}:p1`, T0, at(T0, 30))], T0);
    await applyAt(db, [period(u, 100, `${u}:p2`, at(T0, 30), at(T0, 60))], at(T0, 29));
    await applyAt(db, [spend(u, 60)], at(T0, 29));
    expect((await lotsOf(db, u)).map((lot) => lot.remaining)).toEqual([40, 100]);
    const [swept] = await applyAt(db, [expireOp(u)], at(T0, 30));
    expect(swept).toMatchObject({ status: "expired", expired: 40, available: 100 });
    expect(await expectConsistent(db, u)).toBe(100);
  });

  it("row 4: a renewal after the old lot expired: a new lot of its own; the old stays expired", async () => {
    const db = database.current();
    const u = user();
    await applyAt(db, [period(u, 100, `${u}:p1`, T0, at(T0, 30))], T0);
    await applyAt(db, [period(u, 100, `${u}:p2`, at(T0, 32), at(T0, 62))], at(T0, 33));
    const lots = await lotsOf(db, u);
    expect(lots.map((lot) => [lot.remaining, lot.expired])).toEqual([
      [0, 100],
      [100, 0],
    ]);
    expect(await expectConsistent(db, u)).toBe(100);
  });

  it("row 5: a period processed after its end is born expired: PURCHASE and EXPIRE in one statement, net 0", async () => {
    const db = database.current();
    const u = user();
    const [outcome] = await applyAt(db, [period(u, 100, `${u}:p1`, T0, at(T0, 30))], at(T0, 40));
    expect(outcome?.status).toBe("applied");
    const entries = await entriesOf(db, u);
    expect(entries.map((entry) => [entry.kind, entry.amount])).toEqual([
      ["PURCHASE", 100],
      ["EXPIRE", -100],
    ]);
    expect(entries[1]?.metadata).toMatchObject({ reason: "born_expired" });
    // Processed again: a duplicate, and still one lot.
    const [again] = await applyAt(db, [period(u, 100, `${u}:p1`, T0, at(T0, 30))], at(T0, 41));
    expect(again?.status).toBe("duplicate");
    expect(await lotsOf(db, u)).toHaveLength(1);
    expect(await expectConsistent(db, u)).toBe(0);
  });

  it("a pack and an admin grant open non-expiring lots; a supersede expires the chain's free remainder now", async () => {
    const db = database.current();
    const u = user();
    await applyAt(db, [pack(u, 30, `${u}:pack`), grant(u, 5), period(u, 100, `${u}:a`, T0, at(T0, 30))], T0);
    await applyAt(db, [spend(u, 40)], at(T0, 1));
    const [upgrade] = await applyAt(
      db,
      [period(u, 200, `${u}:b`, at(T0, 2), at(T0, 32), { supersede: true })],
      at(T0, 2),
    );
    expect(upgrade?.status).toBe("applied");
    const lots = await lotsOf(db, u);
    expect(lots.map((lot) => [lot.source, lot.remaining, lot.expired])).toEqual([
      ["pack", 30, 0],
      ["grant", 5, 0],
      ["period", 0, 60],
      ["period", 200, 0],
    ]);
    expect(lots[2]?.expiresAt).toBe(at(T0, 2).toISOString());
    expect((await entriesOf(db, u)).at(-1)).toMatchObject({ kind: "EXPIRE", amount: -60 });
    expect(await expectConsistent(db, u)).toBe(235);
  });
});
