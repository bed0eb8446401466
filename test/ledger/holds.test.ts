import { randomUUID } from "node:crypto";
import pino from "pino";
import postgres from "postgres";
import { afterEach, describe, expect, it } from "vitest";
import { MAX_BALANCE } from "../../src/db/schema.js";
import type { LedgerService } from "../../src/modules/ledger/ledger.service.js";
import {
  APPLY_STATEMENT,
  type ChangeRequest,
  encodeRequests,
} from "../../src/modules/ledger/ledger.statements.js";
import { createExpirySweeper } from "../../src/modules/ledger/ledger.sweeper.js";
import { InvalidInputError } from "../../src/validation.js";
import { driverName, serverUrl, useTestDatabase } from "../helpers/database.js";
import { wholeTableReads } from "../helpers/table-reads.js";
import {
  atClock,
  captureRequest,
  expectHoldInvariant,
  ledgerOf,
  owner,
  pinsOf,
  reserveRequest,
} from "./holds-helpers.js";
import {
  applyAt,
  at,
  entriesOf,
  expireOp,
  grant,
  lotsOf,
  movesOf,
  pack,
  period,
  spend,
} from "./lots-helpers.js";

// Holds at the ledger level: the golden rows 36-49 of design §E (credits-and-holds.md), each named.
// A test that needs a clock runs the service inside a transaction whose ledger.clock it sets
// (options.executor); the others go through the group commit. Each ends on the invariants:
// balance = Σ lots' remaining + Σ active pins = Σ entries, 0 <= held <= balance, and pinned = Σ
// active pins. A hold's tokens stay in the lots (the first held tokens of a user's lots laid end to
// end, soonest-expiring first) until a lot ends while they are held: then they are pinned.

const database = useTestDatabase();
const T0 = new Date("2032-03-01T00:00:00.000Z");
const HOUR = 3_600_000;
const user = () => `hold-${randomUUID()}`;
const key = () => randomUUID();
const plus = (ms: number) => new Date(T0.getTime() + ms);
const unlistens: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(unlistens.splice(0).map((stop) => stop()));
});

async function listenFor(userId: string): Promise<Record<string, unknown>[]> {
  const seen: Record<string, unknown>[] = [];
  const stop = await database.current().handle.listen("token_balance_changed", (payload) => {
    for (const change of JSON.parse(payload) as Record<string, unknown>[])
      if (change.userId === userId) seen.push(change);
  });
  unlistens.push(stop);
  return seen;
}

const until = async (check: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!check() && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 20));
};

describe(`holds in the ledger on ${driverName}`, () => {
  it("row 36: a reserve with enough available holds the soonest-expiring tokens; held and available move, balance stays; event HOLD", async () => {
    const db = database.current();
    const u = user();
    const seen = await listenFor(u);
    await applyAt(db, [grant(u, 100), period(u, 50, `${u}:p`, T0, at(T0, 10))], T0);
    const ledger = ledgerOf(db);
    const result = await atClock(db, plus(HOUR), (executor) =>
      ledger.reserve(u, { amount: 60, idempotencyKey: key(), description: "AI image" }, { executor }),
    );
    expect(result.status).toBe("reserved");
    if (result.status !== "reserved") return;
    expect(result.hold).toMatchObject({ userId: u, amount: 60, status: "active", captured: null });
    expect(result.hold.expiresAt.getTime() - result.hold.createdAt.getTime()).toBe(600_000);
    // The lots keep the held tokens: the period's 50 and the grant's first 10 (soonest expiry first).
    expect((await lotsOf(db, u)).map((lot) => [lot.source, lot.remaining])).toEqual([
      ["grant", 100],
      ["period", 50],
    ]);
    expect(await pinsOf(db.handle.db, result.hold.id)).toEqual([]);
    expect(await expectHoldInvariant(db.handle.db, u)).toEqual({ balance: 150, held: 60 });
    // So a spend draws past them, from the grant, and leaves the period to the hold.
    await atClock(db, plus(HOUR), (executor) =>
      ledgerOf(db).spend(u, { amount: 5, description: "x" }, { executor }),
    );
    expect((await lotsOf(db, u)).map((lot) => [lot.source, lot.remaining])).toEqual([
      ["grant", 95],
      ["period", 50],
    ]);
    await until(() => seen.some((change) => change.kind === "HOLD"));
    expect(seen.find((change) => change.kind === "HOLD")).toMatchObject({
      balance: 150,
      held: 60,
      delta: 0,
      entryId: null,
      holdId: Number(result.hold.id),
    });
  });

  it("row 37: two holds racing for the last tokens (one batch, or two) never both succeed", async () => {
    const db = database.current();
    const ledger = ledgerOf(db);
    for (let round = 0; round < 3; round += 1) {
      const u = user();
      await applyAt(db, [grant(u, 10)]);
      const results = await Promise.all([
        ledger.reserve(u, { amount: 8, idempotencyKey: key() }),
        ledger.reserve(u, { amount: 8, idempotencyKey: key() }),
      ]);
      expect(results.map((result) => result.status).sort()).toEqual(["insufficient", "reserved"]);
      expect(results.find((result) => result.status === "insufficient")).toEqual({
        status: "insufficient",
        required: 8,
        available: 2,
      });
      expect(await expectHoldInvariant(db.handle.db, u)).toEqual({ balance: 10, held: 8 });
    }
    // In one statement: the first in arrival order wins.
    const u = user();
    await applyAt(db, [grant(u, 10)]);
    const reserve = (ord: number) => reserveRequest(u, 8, `${u}:${ord}`, 60);
    const outcomes = await applyAt(db, [reserve(0), reserve(1)]);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(["reserved", "insufficient"]);
    expect(outcomes[1]).toEqual({ status: "insufficient", available: 2 });
  });

  it("row 38: a spend while a hold is active uses only free tokens, refused although the balance covers it", async () => {
    const db = database.current();
    const ledger = ledgerOf(db);
    const u = user();
    await applyAt(db, [grant(u, 100)]);
    await ledger.reserve(u, { amount: 70, idempotencyKey: key() });
    expect(await ledger.spend(u, { amount: 40, description: "too much" })).toMatchObject({
      status: "insufficient",
      available: 30,
    });
    expect(await ledger.spend(u, { amount: 30, description: "the rest" })).toMatchObject({
      status: "applied",
      entry: { balanceAfter: 70 },
    });
    expect(await expectHoldInvariant(db.handle.db, u)).toEqual({ balance: 70, held: 70 });
  });

  it("row 39: a capture below the hold is one SPEND; pins consumed soonest-expiring first, the rest back to its lots", async () => {
    const db = database.current();
    const ledger = ledgerOf(db);
    const u = user();
    const seen = await listenFor(u);
    await applyAt(db, [grant(u, 100), period(u, 50, `${u}:p`, T0, at(T0, 10))], T0);
    const captured = await atClock(db, plus(HOUR), async (executor) => {
      const reserved = await ledger.reserve(u, { amount: 80, idempotencyKey: key() }, { executor });
      if (reserved.status !== "reserved") throw new Error(reserved.status);
      return ledger.capture(reserved.hold.id, { amount: 60, description: "used" }, owner(u), { executor });
    });
    expect(captured.status).toBe("captured");
    if (captured.status !== "captured") return;
    expect(captured.hold).toMatchObject({ status: "captured", captured: 60 });
    expect(captured.entry).toMatchObject({
      kind: "SPEND",
      amount: -60,
      externalRef: `hold:${captured.hold.id}`,
    });
    expect(captured.entry.metadata).toMatchObject({
      holdId: captured.hold.id,
      held: 80,
      captured: 60,
      shortfall: 0,
    });
    expect(captured.shortfall).toBe(0);
    expect((await lotsOf(db, u)).map((lot) => lot.remaining)).toEqual([90, 0]);
    expect(await expectHoldInvariant(db.handle.db, u)).toEqual({ balance: 90, held: 0 });
    // The capture is its SPEND entry in the live feed, with the hold's id.
    await until(() => seen.some((change) => change.kind === "SPEND"));
    expect(seen.find((change) => change.kind === "SPEND")).toMatchObject({
      balance: 90,
      held: 0,
      delta: -60,
      entryId: captured.entry.id,
      holdId: Number(captured.hold.id),
    });
  });

  it("row 40: above the hold, REJECT refuses and the hold stays active; CAP takes the extra from free tokens, never below 0", async () => {
    const db = database.current();
    const ledger = ledgerOf(db);
    const u = user();
    await applyAt(db, [grant(u, 100)]);
    const one = await ledger.reserve(u, { amount: 50, idempotencyKey: key() });
    if (one.status !== "reserved") throw new Error(one.status);
    const refused = await ledger.capture(one.hold.id, { amount: 80 }, owner(u));
    expect(refused).toMatchObject({ status: "amount_exceeds_hold", hold: { status: "active" } });
    const capped = await ledger.capture(one.hold.id, { amount: 80, overage: "CAP" }, owner(u));
    expect(capped).toMatchObject({ status: "captured", shortfall: 0, entry: { amount: -80 } });
    expect(await expectHoldInvariant(db.handle.db, u)).toEqual({ balance: 20, held: 0 });
    // Not enough free tokens for the extra: the capture takes what is there and records the rest.
    const two = await ledger.reserve(u, { amount: 15, idempotencyKey: key() });
    if (two.status !== "reserved") throw new Error(two.status);
    const shortfalls: number[] = [];
    const capping = ledgerOf(db, { captureOverage: "CAP", onCaptureShortfall: (n) => shortfalls.push(n) });
    const short = await capping.capture(two.hold.id, { amount: 100 }, owner(u));
    expect(short).toMatchObject({ status: "captured", shortfall: 80, entry: { amount: -20 } });
    expect(await capping.capture(two.hold.id, { amount: 100 }, owner(u))).toMatchObject({ replayed: true });
    expect(shortfalls).toEqual([80]);
    expect(await expectHoldInvariant(db.handle.db, u)).toEqual({ balance: 0, held: 0 });
  });

  it("row 41: a capture after expires_at, before any sweep, is HOLD_EXPIRED and the hold is released in the same statement", async () => {
    const db = database.current();
    const ledger = ledgerOf(db);
    const u = user();
    await applyAt(db, [grant(u, 100)], T0);
    const reserved = await atClock(db, T0, (executor) =>
      ledger.reserve(u, { amount: 40, ttlSeconds: 60, idempotencyKey: key() }, { executor }),
    );
    if (reserved.status !== "reserved") throw new Error(reserved.status);
    const late = await atClock(db, plus(60_000), (executor) =>
      ledger.capture(reserved.hold.id, { amount: 10 }, owner(u), { executor }),
    );
    expect(late).toMatchObject({ status: "hold_expired", hold: { status: "expired" } });
    expect(await expectHoldInvariant(db.handle.db, u)).toEqual({ balance: 100, held: 0 });
    expect((await entriesOf(db, u)).map((entry) => entry.kind)).toEqual(["GRANT"]);
  });

  it("row 42: a hold outlives the lot it pinned; the capture succeeds from the pins and the unused part expires then", async () => {
    const db = database.current();
    const ledger = ledgerOf(db);
    const u = user();
    await applyAt(db, [period(u, 50, `${u}:p`, T0, plus(HOUR))], T0);
    const [first, second] = await atClock(db, T0, async (executor) => [
      await ledger.reserve(u, { amount: 30, ttlSeconds: 86_400, idempotencyKey: key() }, { executor }),
      await ledger.reserve(u, { amount: 10, ttlSeconds: 86_400, idempotencyKey: key() }, { executor }),
    ]);
    if (first?.status !== "reserved" || second?.status !== "reserved") throw new Error("not reserved");
    const captured = await atClock(db, plus(2 * HOUR), (executor) =>
      ledger.capture(first.hold.id, { amount: 10 }, owner(u), { executor }),
    );
    expect(captured.status).toBe("captured");
    const released = await atClock(db, plus(3 * HOUR), (executor) =>
      ledger.release(second.hold.id, owner(u), { executor }),
    );
    expect(released).toMatchObject({ status: "released", replayed: false, hold: { status: "released" } });
    const kinds = (await entriesOf(db, u)).map((entry) => [
      entry.kind,
      entry.amount,
      entry.metadata?.reason ?? null,
    ]);
    expect(kinds).toEqual([
      ["PURCHASE", 50, null],
      ["EXPIRE", -10, "expired"],
      ["SPEND", -10, null],
      ["EXPIRE", -20, "hold_past_end"],
      ["EXPIRE", -10, "hold_past_end"],
    ]);
    expect(await expectHoldInvariant(db.handle.db, u)).toEqual({ balance: 0, held: 0 });
  });

  it("row 43: the hold's TTL passes and the sweeper runs: EXPIRED, available restored, event HOLD_EXPIRED; counted once", async () => {
    const db = database.current();
    const ledger = ledgerOf(db);
    const u = user();
    const seen = await listenFor(u);
    await applyAt(db, [grant(u, 50)]);
    const hold = await ledger.reserve(u, { amount: 30, ttlSeconds: 1, idempotencyKey: key() });
    const other = await ledger.reserve(u, { amount: 5, ttlSeconds: 600, idempotencyKey: key() });
    if (hold.status !== "reserved" || other.status !== "reserved") throw new Error("not reserved");
    await new Promise((resolve) => setTimeout(resolve, hold.hold.expiresAt.getTime() - Date.now() + 50));
    const counted = { expired: 0, active: -1, tokens: -1 };
    const sweeper = (ledger: LedgerService) =>
      createExpirySweeper({
        database: db.handle,
        ledger,
        intervalMs: 0,
        logger: pino({ level: "silent" }),
        metrics: {
          expired: () => {},
          lag: () => {},
          holdsExpired: (n) => (counted.expired += n),
          holds: (active, tokens) => Object.assign(counted, { active, tokens }),
        },
      });
    // Two sweepers at once (two instances): the hold is expired and counted once.
    const [one, two] = await Promise.all([sweeper(ledger).runOnce(), sweeper(ledgerOf(db)).runOnce()]);
    expect((one.holds ?? 0) + (two.holds ?? 0)).toBe(1);
    expect(counted.expired).toBe(1);
    expect(await ledger.holdOf(hold.hold.id, owner(u))).toMatchObject({ status: "expired" });
    expect(await ledger.holdOf(other.hold.id, owner(u))).toMatchObject({ status: "active" });
    expect(await expectHoldInvariant(db.handle.db, u)).toEqual({ balance: 50, held: 5 });
    await until(() => seen.some((change) => change.kind === "HOLD_EXPIRED"));
    expect(seen.find((change) => change.kind === "HOLD_EXPIRED")).toMatchObject({
      held: 5,
      delta: 0,
      entryId: null,
      holdId: Number(hold.hold.id),
    });
    expect(await sweeper(ledger).runOnce()).toEqual({ users: 0, tokens: 0 });
  });

  it("row 44: capture replays with the same amount; another amount, a capture after release, a release after capture are refused", async () => {
    const db = database.current();
    const ledger = ledgerOf(db);
    const u = user();
    await applyAt(db, [grant(u, 100)]);
    const a = await ledger.reserve(u, { amount: 20, idempotencyKey: key() });
    const b = await ledger.reserve(u, { amount: 20, idempotencyKey: key() });
    if (a.status !== "reserved" || b.status !== "reserved") throw new Error("not reserved");
    const first = await ledger.capture(a.hold.id, { amount: 15 }, owner(u));
    const again = await ledger.capture(a.hold.id, { amount: 15 }, owner(u));
    expect(again).toMatchObject({ status: "captured", replayed: true });
    if (first.status !== "captured" || again.status !== "captured") throw new Error("not captured");
    expect(again.entry.id).toBe(first.entry.id);
    expect(await ledger.capture(a.hold.id, { amount: 16 }, owner(u))).toMatchObject({
      status: "hold_already_captured",
    });
    expect(await ledger.release(a.hold.id, owner(u))).toMatchObject({ status: "hold_already_captured" });
    expect(await ledger.release(b.hold.id, owner(u))).toMatchObject({ status: "released", replayed: false });
    expect(await ledger.release(b.hold.id, owner(u))).toMatchObject({ status: "released", replayed: true });
    expect(await ledger.capture(b.hold.id, { amount: 5 }, owner(u))).toMatchObject({
      status: "hold_released",
    });
    // Someone else's hold is not found; an admin acts on anyone's.
    expect(await ledger.release(b.hold.id, owner(user()))).toEqual({ status: "hold_not_found" });
    expect(await ledger.capture("999999999999", { amount: 1 }, owner(u))).toEqual({
      status: "hold_not_found",
    });
    expect(await ledger.release(b.hold.id, { userId: "ops", admin: true })).toMatchObject({ replayed: true });
    expect(await expectHoldInvariant(db.handle.db, u)).toEqual({ balance: 85, held: 0 });
  });

  it("row 45: a reserve replayed with its key after the hold expired returns the original hold, EXPIRED; other input is refused", async () => {
    const db = database.current();
    const ledger = ledgerOf(db);
    const u = user();
    const k = key();
    await applyAt(db, [grant(u, 100)], T0);
    const input = { amount: 40, ttlSeconds: 60, idempotencyKey: k };
    const first = await atClock(db, T0, (executor) => ledger.reserve(u, input, { executor }));
    const replay = await atClock(db, plus(HOUR), (executor) => ledger.reserve(u, input, { executor }));
    if (first.status !== "reserved") throw new Error(first.status);
    expect(replay).toMatchObject({
      status: "reserved",
      replayed: true,
      hold: { id: first.hold.id, status: "expired" },
    });
    expect(await ledger.reserve(u, { ...input, amount: 41 })).toEqual({
      status: "key_reused",
      available: 100,
    });
    expect(await expectHoldInvariant(db.handle.db, u)).toEqual({ balance: 100, held: 0 });
  });

  it("row 46: a store refund while tokens are pinned takes only free tokens; the hold stays capturable", async () => {
    const db = database.current();
    const ledger = ledgerOf(db);
    const u = user();
    await applyAt(db, [pack(u, 100, `TEST_STORE:${u}`)]);
    const hold = await ledger.reserve(u, { amount: 80, idempotencyKey: key() });
    if (hold.status !== "reserved") throw new Error(hold.status);
    const refund = await ledger.refundPurchase({ storeRef: `TEST_STORE:${u}`, metadata: {} });
    expect(refund).toMatchObject({ status: "refunded", recovered: 20, shortfall: 80, fromLot: 20 });
    expect(await expectHoldInvariant(db.handle.db, u)).toEqual({ balance: 80, held: 80 });
    expect(await ledger.capture(hold.hold.id, { amount: 80 }, owner(u))).toMatchObject({
      status: "captured",
    });
    expect(await expectHoldInvariant(db.handle.db, u)).toEqual({ balance: 0, held: 0 });
  });

  it("row 47: an upgrade supersedes a lot a hold pins from: the free part expires now, the pinned part at capture", async () => {
    const db = database.current();
    const ledger = ledgerOf(db);
    const u = user();
    await applyAt(db, [period(u, 100, `${u}:a`, T0, at(T0, 30))], T0);
    const hold = await atClock(db, plus(HOUR), (executor) =>
      ledger.reserve(u, { amount: 60, ttlSeconds: 86_400, idempotencyKey: key() }, { executor }),
    );
    if (hold.status !== "reserved") throw new Error(hold.status);
    await applyAt(
      db,
      [period(u, 500, `${u}:b`, plus(2 * HOUR), at(T0, 30), { supersede: true })],
      plus(2 * HOUR),
    );
    expect(await expectHoldInvariant(db.handle.db, u)).toEqual({ balance: 560, held: 60 });
    const captured = await atClock(db, plus(3 * HOUR), (executor) =>
      ledger.capture(hold.hold.id, { amount: 20 }, owner(u), { executor }),
    );
    expect(captured.status).toBe("captured");
    const kinds = (await entriesOf(db, u)).map((entry) => [
      entry.kind,
      entry.amount,
      entry.metadata?.reason ?? null,
    ]);
    expect(kinds).toEqual([
      ["PURCHASE", 100, null],
      ["PURCHASE", 500, null],
      ["EXPIRE", -40, "superseded"],
      ["SPEND", -20, null],
      ["EXPIRE", -40, "hold_past_end"],
    ]);
    expect(await expectHoldInvariant(db.handle.db, u)).toEqual({ balance: 500, held: 0 });
  });

  it("a lot that ends while tokens of it are held pins them to the holds that end last first; the rest of them outlive it", async () => {
    const db = database.current();
    const ledger = ledgerOf(db);
    const u = user();
    await applyAt(db, [grant(u, 100), period(u, 50, `${u}:p`, T0, plus(HOUR))], T0);
    const [soon, late] = await atClock(db, T0, async (executor) => [
      await ledger.reserve(u, { amount: 30, ttlSeconds: 7_200, idempotencyKey: key() }, { executor }),
      await ledger.reserve(u, { amount: 30, ttlSeconds: 86_400, idempotencyKey: key() }, { executor }),
    ]);
    if (soon?.status !== "reserved" || late?.status !== "reserved") throw new Error("not reserved");
    // Held: 60, the period's 50 and the grant's first 10. The period ends: nothing of it expires, its
    // 50 are pinned, 30 to the hold that ends last, 20 to the other.
    await applyAt(db, [expireOp(u)], plus(1.5 * HOUR));
    expect(await pinsOf(db.handle.db, late.hold.id)).toEqual([{ lotId: expect.any(Number), amount: 30 }]);
    expect(await pinsOf(db.handle.db, soon.hold.id)).toEqual([{ lotId: expect.any(Number), amount: 20 }]);
    expect(await expectHoldInvariant(db.handle.db, u)).toEqual({ balance: 150, held: 60 });
    // The first hold ends by its TTL: its 20 pins expire with it. The other's capture uses its pins.
    const captured = await atClock(db, plus(3 * HOUR), (executor) =>
      ledger.capture(late.hold.id, { amount: 30 }, owner(u), { executor }),
    );
    expect(captured.status).toBe("captured");
    expect(
      (await entriesOf(db, u)).map((entry) => [entry.kind, entry.amount, entry.metadata?.reason ?? null]),
    ).toEqual([
      ["GRANT", 100, null],
      ["PURCHASE", 50, null],
      ["EXPIRE", -20, "hold_past_end"],
      ["SPEND", -30, null],
    ]);
    expect((await lotsOf(db, u)).map((lot) => [lot.source, lot.remaining])).toEqual([
      ["grant", 100],
      ["period", 0],
    ]);
    expect(await expectHoldInvariant(db.handle.db, u)).toEqual({ balance: 100, held: 0 });
  });

  it("a cut to a past end keeps what of the lot is held, pinned to its hold; a lot past the held tokens expires whole", async () => {
    const db = database.current();
    const ledger = ledgerOf(db);
    const u = user();
    await applyAt(
      db,
      [
        period(u, 50, `${u}:a`, T0, at(T0, 10), { chain: `${u}:a` }),
        period(u, 50, `${u}:b`, T0, at(T0, 20), { chain: `${u}:b` }),
      ],
      T0,
    );
    const hold = await atClock(db, plus(HOUR), (executor) =>
      ledger.reserve(u, { amount: 20, ttlSeconds: 86_400, idempotencyKey: key() }, { executor }),
    );
    if (hold.status !== "reserved") throw new Error(hold.status);
    const cut = (ref: string): ChangeRequest => ({
      userId: u,
      delta: 0,
      kind: "EXPIRE",
      description: null,
      op: "cut",
      lot: { ref, expiresAt: plus(2 * HOUR) },
    });
    // The held 20 are the first of lot a (it ends first): cutting b expires all of b, cutting a only
    // its 30 free tokens.
    expect(await applyAt(db, [cut(`${u}:b`), cut(`${u}:a`)], plus(3 * HOUR))).toMatchObject([
      { status: "lot_changed" },
      { status: "lot_changed" },
    ]);
    expect(
      (await entriesOf(db, u)).map((entry) => [entry.kind, entry.amount, entry.metadata?.reason ?? null]),
    ).toEqual([
      ["PURCHASE", 50, null],
      ["PURCHASE", 50, null],
      ["EXPIRE", -50, "cut"],
      ["EXPIRE", -30, "cut"],
    ]);
    // Each EXPIRE names the end its lot was cut to.
    const ends = (await entriesOf(db, u))
      .filter((entry) => entry.kind === "EXPIRE")
      .map((entry) => Date.parse(String(entry.metadata?.expiresAt)));
    expect(ends).toEqual([plus(2 * HOUR).getTime(), plus(2 * HOUR).getTime()]);
    expect(await pinsOf(db.handle.db, hold.hold.id)).toEqual([{ lotId: expect.any(Number), amount: 20 }]);
    expect(await expectHoldInvariant(db.handle.db, u)).toEqual({ balance: 20, held: 20 });
    const captured = await atClock(db, plus(4 * HOUR), (executor) =>
      ledger.capture(hold.hold.id, { amount: 20 }, owner(u), { executor }),
    );
    expect(captured.status).toBe("captured");
    expect(await expectHoldInvariant(db.handle.db, u)).toEqual({ balance: 0, held: 0 });
  });

  it("a lot that ends again after an extension and a refill, while a hold keeps tokens of it, grows that hold's pin", async () => {
    const db = database.current();
    const ledger = ledgerOf(db);
    const u = user();
    await applyAt(db, [period(u, 6, `${u}:a`, T0, plus(2 * HOUR), { chain: `${u}:a` }), grant(u, 100)], T0);
    const [first, second] = await atClock(db, T0, async (executor) => [
      await ledger.reserve(u, { amount: 5, ttlSeconds: 20 * 3_600, idempotencyKey: key() }, { executor }),
      await ledger.reserve(u, { amount: 5, ttlSeconds: 23 * 3_600, idempotencyKey: key() }, { executor }),
    ]);
    if (first?.status !== "reserved" || second?.status !== "reserved") throw new Error("not reserved");
    // Lot a ends with its 6 tokens held: 5 pinned to the second hold (it ends last), 1 to the first.
    await applyAt(db, [expireOp(u)], plus(2.5 * HOUR));
    expect(await pinsOf(db.handle.db, first.hold.id)).toEqual([{ lotId: expect.any(Number), amount: 1 }]);
    // Lot a is extended, and the second hold's release gives its 5 back to it.
    const extend: ChangeRequest = {
      userId: u,
      delta: 0,
      kind: "EXPIRE",
      description: null,
      op: "extend",
      lot: { ref: `${u}:a`, expiresAt: plus(10 * HOUR) },
    };
    expect(await applyAt(db, [extend], plus(3 * HOUR))).toMatchObject([{ status: "lot_changed" }]);
    expect(
      await atClock(db, plus(3 * HOUR), (executor) => ledger.release(second.hold.id, owner(u), { executor })),
    ).toMatchObject({ status: "released" });
    // Lot a ends again: the first hold keeps 4 more of it, so its pin of a grows to 5 (before the
    // fix, the pin's append-only trigger refused that, and every batch of the user failed).
    await applyAt(db, [expireOp(u)], plus(11 * HOUR));
    expect(await pinsOf(db.handle.db, first.hold.id)).toEqual([{ lotId: expect.any(Number), amount: 5 }]);
    expect(await expectHoldInvariant(db.handle.db, u)).toEqual({ balance: 105, held: 5 });
    const captured = await atClock(db, plus(12 * HOUR), (executor) =>
      ledger.capture(first.hold.id, { amount: 5 }, owner(u), { executor }),
    );
    expect(captured.status).toBe("captured");
    expect(
      (await entriesOf(db, u)).map((entry) => [entry.kind, entry.amount, entry.metadata?.reason ?? null]),
    ).toEqual([
      ["PURCHASE", 6, null],
      ["GRANT", 100, null],
      ["EXPIRE", -1, "expired"],
      ["SPEND", -5, null],
    ]);
    expect(await expectHoldInvariant(db.handle.db, u)).toEqual({ balance: 100, held: 0 });
    // A pin only grows: anything else is refused.
    await expect(
      db.handle.query("UPDATE token_hold_pins SET amount = 1 WHERE hold_id = $1", [Number(first.hold.id)]),
    ).rejects.toThrow(/append-only/);
  });

  it("row 48: ttlSeconds <= 0 or > 86400 is invalid input naming ttlSeconds; the hold past the limit is TOO_MANY_HOLDS", async () => {
    const db = database.current();
    const ledger = ledgerOf(db);
    const u = user();
    await applyAt(db, [grant(u, 100)]);
    for (const ttlSeconds of [0, -5, 86_401, 1.5]) {
      const refused = ledger.reserve(u, { amount: 1, ttlSeconds, idempotencyKey: key() });
      await expect(refused).rejects.toThrow(InvalidInputError);
      await expect(refused).rejects.toThrow(/^ttlSeconds: /);
    }
    await expect(ledger.reserve(u, { amount: 1, idempotencyKey: key() })).resolves.toMatchObject({
      status: "reserved",
    });
    const more = await Promise.all(
      Array.from({ length: 15 }, () => ledger.reserve(u, { amount: 1, idempotencyKey: key() })),
    );
    expect(more.every((result) => result.status === "reserved")).toBe(true);
    expect(await ledger.reserve(u, { amount: 1, idempotencyKey: key() })).toEqual({
      status: "too_many_holds",
      limit: 16,
    });
    expect(await expectHoldInvariant(db.handle.db, u)).toEqual({ balance: 100, held: 16 });
  });

  it("row 49: the process dies after the job, before the capture: the hold expires at its TTL and the tokens return", async () => {
    const db = database.current();
    const u = user();
    await applyAt(db, [grant(u, 100)]);
    const dying = ledgerOf(db);
    const hold = await dying.reserve(u, { amount: 100, ttlSeconds: 1, idempotencyKey: key() });
    if (hold.status !== "reserved") throw new Error(hold.status);
    // The job ran and its process died: nothing captures. Another instance spends after the TTL.
    await new Promise((resolve) => setTimeout(resolve, hold.hold.expiresAt.getTime() - Date.now() + 50));
    expect(await ledgerOf(db).spend(u, { amount: 60, description: "after the TTL" })).toMatchObject({
      status: "applied",
      entry: { balanceAfter: 40 },
    });
    expect(await ledgerOf(db).holdOf(hold.hold.id, owner(u))).toMatchObject({ status: "expired" });
    expect(await expectHoldInvariant(db.handle.db, u)).toEqual({ balance: 40, held: 0 });
  });

  it("a capture draws what it takes like a spend; a later debit of the same user in the batch draws the hold's rest", async () => {
    const db = database.current();
    const u = user();
    await applyAt(db, [grant(u, 10)]);
    const hold = await ledgerOf(db).reserve(u, { amount: 10, idempotencyKey: key() });
    if (hold.status !== "reserved") throw new Error(hold.status);
    // One batch: the capture takes 4 of its 10 from the grant's lot, the 6 it did not use are free,
    // and a plain debit (no key) of the same user spends them, in the same write step.
    const [captured, spent] = await applyAt(db, [captureRequest(u, hold.hold.id, 4), spend(u, 6)]);
    expect(captured).toMatchObject({ status: "applied", entry: { amount: -4, balanceAfter: 6 } });
    expect(spent).toMatchObject({ status: "applied", entry: { amount: -6, balanceAfter: 0 } });
    expect(await movesOf(db, u)).toEqual([
      [10, "grant", 10, 10],
      [-4, "grant", 10, -4],
      [-6, "grant", 10, -6],
    ]);
    expect(await expectHoldInvariant(db.handle.db, u)).toEqual({ balance: 0, held: 0 });
  });

  it("reserve, capture and release reach balances, holds, pins and lots through keys, never by reading a whole table", async () => {
    const db = database.current();
    const ledger = ledgerOf(db);
    // Many users' lots and holds, so that reading a whole table is never what a key probe would do.
    const many = Array.from({ length: 300 }, () => user());
    await applyAt(
      db,
      many.map((u) => grant(u, 10)),
    );
    await Promise.all(many.map((u) => ledger.reserve(u, { amount: 2, idempotencyKey: key() })));
    const u = user();
    await applyAt(db, [grant(u, 100), period(u, 50, `${u}:p`, T0, at(T0, 30))], T0);
    const reads = await atClock(db, plus(HOUR), (executor) =>
      wholeTableReads(
        executor,
        ["token_balances", "token_holds", "token_hold_pins", "token_lots"],
        async () => {
          for (let round = 0; round < 8; round += 1) {
            const first = await ledger.reserve(u, { amount: 20, idempotencyKey: key() }, { executor });
            const second = await ledger.reserve(u, { amount: 5, idempotencyKey: key() }, { executor });
            if (first.status !== "reserved" || second.status !== "reserved") throw new Error("not reserved");
            expect(await ledger.capture(first.hold.id, { amount: 3 }, owner(u), { executor })).toMatchObject({
              status: "captured",
            });
            expect(await ledger.release(second.hold.id, owner(u), { executor })).toMatchObject({
              status: "released",
            });
          }
        },
      ),
    );
    expect(reads).toEqual({ token_balances: 0, token_holds: 0, token_hold_pins: 0, token_lots: 0 });
    expect(await expectHoldInvariant(db.handle.db, u)).toEqual({ balance: 126, held: 0 });
  });
});

/**
 * Runs `work` with ledger_apply over a connection of its own on which auto_explain logs the plan of
 * every statement, nested ones too, as a notice handed to `onPlan`.
 */
async function withPlansLogged(
  url: string,
  onPlan: (plan: string) => void,
  work: (
    apply: (requests: ChangeRequest[]) => Promise<{ status: string; hold_after: { id: number } }[]>,
  ) => Promise<void>,
): Promise<void> {
  const connection = postgres(url, { max: 1, onnotice: (notice) => onPlan(notice.message ?? "") });
  try {
    await connection`LOAD 'auto_explain'`;
    await connection`SET auto_explain.log_min_duration = 0`;
    await connection`SET auto_explain.log_nested_statements = on`;
    await connection`SET auto_explain.log_level = 'notice'`;
    await work(async (requests) =>
      connection.unsafe<{ status: string; hold_after: { id: number } }[]>(APPLY_STATEMENT, [
        connection.json(JSON.parse(encodeRequests(requests))) as never,
        MAX_BALANCE,
      ]),
    );
  } finally {
    await connection.end();
  }
}

// PL/pgSQL keeps each statement's plan in a plan cache: after five executions it switches to one
// generic plan, unless that plan costs more than the plans it made for the actual values. For the
// holds statement (new holds, closed holds, returns of pins), a plan made for one batch's arrays,
// often empty ones, always looked cheaper, so PostgreSQL planned it anew at most batches (0.25-0.42 ms
// of a batch of 16). The plans are read from auto_explain, which shows a generic plan's values as
// parameters ($n); PGlite has the same planner but no auto_explain in this build, so this runs on
// PostgreSQL.
describe.runIf(serverUrl)("the money function's plans on postgres", () => {
  it("runs one statement of a reserve's own, as of a spend's, and two of a capture's, whatever it uses of its hold", async () => {
    const db = database.current();
    const users = Array.from({ length: 5 }, () => user());
    await applyAt(
      db,
      users.map((u) => grant(u, 1_000)),
    );
    let logged = 0;
    await withPlansLogged(
      db.url as string,
      () => (logged += 1),
      async (apply) => {
        // Statements a request runs of its own: a batch of four runs the batch's own statements once
        // (locks, expiry, the write step) and a request's four times; a batch of one runs each once.
        const ownStatements = async (make: (userId: string, i: number) => ChangeRequest) => {
          const counted = async (requests: ChangeRequest[]) => {
            const before = logged;
            const rows = await apply(requests);
            return { rows, statements: logged - before };
          };
          const one = await counted([make(users[0] as string, 0)]);
          const four = await counted(users.slice(1).map((u, i) => make(u, i + 1)));
          return { rows: [...one.rows, ...four.rows], each: (four.statements - one.statements) / 3 };
        };
        const spends = await ownStatements((u) => spend(u, 1));
        expect(spends.rows.map((row) => row.status)).toEqual(users.map(() => "applied"));
        const reserves = await ownStatements((u) => reserveRequest(u, 3, key()));
        expect(reserves.rows.map((row) => row.status)).toEqual(users.map(() => "reserved"));
        const captures = await ownStatements((u, i) =>
          captureRequest(u, String(reserves.rows[i]?.hold_after.id), 3),
        );
        expect(captures.rows.map((row) => row.status)).toEqual(users.map(() => "applied"));
        const held = await ownStatements((u) => reserveRequest(u, 3, key()));
        const partial = await ownStatements((u, i) =>
          captureRequest(u, String(held.rows[i]?.hold_after.id), 1),
        );
        expect(partial.rows.map((row) => row.status)).toEqual(users.map(() => "applied"));
        // A spend: its balance update. A reserve: its balance update, which checks the key, the limit
        // and the free tokens. A capture: the hold, the balance update (its draw waits for the write
        // step, like a spend's); nothing goes back to the lots when it uses less than its hold.
        expect({
          spend: spends.each,
          reserve: reserves.each,
          capture: captures.each,
          partial: partial.each,
        }).toEqual({
          spend: 1,
          reserve: 1,
          capture: 2,
          partial: 2,
        });
      },
    );
    expect(await expectHoldInvariant(db.handle.db, users[0] as string)).toEqual({ balance: 995, held: 0 });
  });

  it("plans the holds statement once per connection, not at every batch", async () => {
    const db = database.current();
    const users = Array.from({ length: 4 }, () => user());
    await applyAt(
      db,
      users.map((u) => grant(u, 1_000)),
    );
    const plans: string[] = [];
    const onPlan = (plan: string) => {
      if (plan.includes("INSERT INTO token_holds")) plans.push(plan);
    };
    await withPlansLogged(db.url as string, onPlan, async (apply) => {
      for (let round = 0; round < 8; round += 1) {
        const reserved = await apply(users.map((u) => reserveRequest(u, 3, key())));
        expect(reserved.map((row) => row.status)).toEqual(users.map(() => "reserved"));
        const captured = await apply(
          reserved.map((row, i) => captureRequest(users[i] as string, String(row.hold_after.id), 1)),
        );
        expect(captured.map((row) => row.status)).toEqual(users.map(() => "applied"));
      }
    });
    // Each batch ran the statement once; a plan made for the batch's own values shows them
    // (`= ANY ('{...}'::bigint[])`), the generic plan shows parameters (`= ANY ($n)`).
    expect(plans).toHaveLength(16);
    expect(plans.filter((plan) => /= ANY \('\{/.test(plan))).toEqual([]);
    expect(plans.every((plan) => /= ANY \(\$\d+\)/.test(plan))).toBe(true);
    expect(await expectHoldInvariant(db.handle.db, users[0] as string)).toEqual({ balance: 992, held: 0 });
  });
});
