import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { MAX_BALANCE } from "../../src/db/schema.js";
import type { ChangeOutcome, ChangeRequest } from "../../src/modules/ledger/ledger.statements.js";
import { driverName, useTestDatabase } from "../helpers/database.js";
import { applyAt, at, entriesOf, expectConsistent, grant, lotsOf, period, spend } from "./lots-helpers.js";

// §E row 34 (credits-and-holds.md): an admin reverses a spend that used an expiring lot. The tokens
// go back into the same lots through the spend's moves; a part whose lot is past its end expires at
// once. In ledger_apply alone, at clocks of the test's choosing; each ends on the invariant.

const database = useTestDatabase();
const T0 = new Date("2031-03-01T00:00:00.000Z");
const user = () => `rev-${randomUUID()}`;

const reverseSpend = (userId: string, entryId: number): ChangeRequest => ({
  userId,
  delta: 0,
  kind: "ADJUSTMENT",
  description: "support ticket 7640",
  externalRef: `reversal:${entryId}`,
  op: "reverse_spend",
  reversesEntry: String(entryId),
});

const entryIdOf = (outcome: ChangeOutcome | undefined): number => {
  if (outcome?.status !== "applied") throw new Error(`not applied: ${outcome?.status}`);
  return outcome.entry.id;
};

/** A user with 50 non-expiring tokens and a 100-token period ending on day 30, who spent 120 on day 1. */
async function spentAcrossLots() {
  const db = database.current();
  const u = user();
  await applyAt(db, [grant(u, 50), period(u, 100, `${u}:p1`, T0, at(T0, 30))], T0);
  const [spent] = await applyAt(db, [spend(u, 120)], at(T0, 1));
  expect((await lotsOf(db, u)).map((lot) => [lot.source, lot.remaining])).toEqual([
    ["grant", 30],
    ["period", 0],
  ]);
  return { db, u, spendId: entryIdOf(spent) };
}

describe(`row 34: an admin reverses a spend, on ${driverName}`, () => {
  it("row 34: the tokens go back into the same lots, the expiring one with its own end", async () => {
    const { db, u, spendId } = await spentAcrossLots();
    const [reversed] = await applyAt(db, [reverseSpend(u, spendId)], at(T0, 2));
    expect(reversed).toMatchObject({ status: "applied", entry: { amount: 120, kind: "ADJUSTMENT" } });
    const lots = await lotsOf(db, u);
    expect(lots.map((lot) => [lot.source, lot.remaining, lot.expiresAt])).toEqual([
      ["grant", 50, null],
      ["period", 100, at(T0, 30).toISOString()],
    ]);
    const entries = await entriesOf(db, u);
    expect(entries.at(-1)?.metadata).toMatchObject({ reversesEntryId: String(spendId) });
    expect(await expectConsistent(db, u)).toBe(150);
  });

  it("row 34: past the lot's end, its part comes back and expires at once (an EXPIRE after the reversal)", async () => {
    const { db, u, spendId } = await spentAcrossLots();
    const [reversed] = await applyAt(db, [reverseSpend(u, spendId)], at(T0, 31));
    expect(reversed).toMatchObject({ status: "applied", entry: { amount: 120 } });
    const tail = (await entriesOf(db, u)).slice(-2).map((entry) => [entry.kind, entry.amount]);
    expect(tail).toEqual([
      ["ADJUSTMENT", 120],
      ["EXPIRE", -100],
    ]);
    expect((await lotsOf(db, u)).map((lot) => [lot.source, lot.remaining, lot.expired])).toEqual([
      ["grant", 50, 0],
      ["period", 0, 100],
    ]);
    expect(await expectConsistent(db, u)).toBe(50);
  });

  it("row 34: a spend is reversed once; asking again answers the first reversal and changes nothing", async () => {
    const { db, u, spendId } = await spentAcrossLots();
    const [first] = await applyAt(db, [reverseSpend(u, spendId)], at(T0, 2));
    const [again] = await applyAt(db, [reverseSpend(u, spendId)], at(T0, 3));
    expect(again).toMatchObject({ status: "duplicate", entry: { id: entryIdOf(first) } });
    expect(await expectConsistent(db, u)).toBe(150);
  });

  it("row 34: in one batch after other spends of the same user, their draws are written before the reversal reads the lots", async () => {
    const { db, u, spendId } = await spentAcrossLots();
    // The two new spends wait for the batch's draw step; the reversal of the first spend needs
    // the lots as they are after them.
    const outcomes = await applyAt(
      db,
      [spend(u, 10), spend(u, 5), reverseSpend(u, spendId), spend(u, 7)],
      at(T0, 2),
    );
    expect(outcomes.map((outcome) => outcome.status)).toEqual(["applied", "applied", "applied", "applied"]);
    // 30 left in the grant: 10 and 5 from it, then 120 back (100 to the period, 20 to the grant),
    // then 7 from the period (soonest expiry first).
    expect((await lotsOf(db, u)).map((lot) => lot.remaining)).toEqual([35, 93]);
    expect(await expectConsistent(db, u)).toBe(128);
  });

  it("row 34: a reversal that would lift the balance above the cap is refused whole", async () => {
    const { db, u, spendId } = await spentAcrossLots();
    await applyAt(db, [grant(u, MAX_BALANCE - 30)], at(T0, 2));
    const [refused] = await applyAt(db, [reverseSpend(u, spendId)], at(T0, 2));
    expect(refused?.status).toBe("limit");
    expect(await expectConsistent(db, u)).toBe(MAX_BALANCE);
  });
});
