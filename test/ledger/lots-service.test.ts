import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import pino from "pino";
import { describe, expect, it } from "vitest";
import type { Executor } from "../../src/db/client.js";
import { createLedgerService } from "../../src/modules/ledger/ledger.service.js";
import { createExpirySweeper } from "../../src/modules/ledger/ledger.sweeper.js";
import { driverName, type TestDatabase, useTestDatabase } from "../helpers/database.js";
import {
  applyAt,
  at,
  entriesOf,
  expectConsistent,
  grant,
  lotsOf,
  pack,
  period,
  spend,
} from "./lots-helpers.js";

// Lots through the ledger service (refunds, their reversal, extensions and cuts, the sweeper), the
// golden rows of design §E at the ledger level. A test that needs a clock runs the service inside a
// transaction whose ledger.clock it sets (options.executor, as a webhook's transaction is given).

const database = useTestDatabase();
const T0 = new Date("2031-06-01T00:00:00.000Z");
const user = () => `svc-${randomUUID()}`;
const ledgerOf = (db: TestDatabase) =>
  createLedgerService({ database: db.handle, logger: pino({ level: "silent" }) });

function atClock<T>(db: TestDatabase, when: Date, work: (executor: Executor) => Promise<T>): Promise<T> {
  return db.handle.db.transaction(async (tx) => {
    await tx.execute(sql`SELECT set_config('ledger.clock', ${when.toISOString()}, true)`);
    return work(tx);
  });
}

describe(`lots through the ledger service on ${driverName}`, () => {
  it("row 24: a refund of the latest period after half was spent: its lot first, then the others FEFO, clamped with the shortfall", async () => {
    const db = database.current();
    const ledger = ledgerOf(db);
    const u = user();
    await applyAt(db, [pack(u, 300, `${u}:pack`), period(u, 1000, `${u}:p1`, T0, at(T0, 30))], T0);
    await applyAt(db, [spend(u, 500)], at(T0, 1));
    const result = await atClock(db, at(T0, 2), (executor) =>
      ledger.refundPurchase({ storeRef: `${u}:p1`, metadata: { event: "REFUND" } }, { executor }),
    );
    expect(result).toMatchObject({
      status: "refunded",
      recovered: 800,
      shortfall: 200,
      target: 1000,
      fromLot: 500,
      alreadyExpired: 0,
      fromOthers: 300,
    });
    expect((await lotsOf(db, u)).map((lot) => lot.remaining)).toEqual([0, 0]);
    // Redelivered: a duplicate, nothing taken twice.
    const again = await ledger.refundPurchase({ storeRef: `${u}:p1`, metadata: {} });
    expect(again.status).toBe("duplicate");
    expect(await expectConsistent(db, u)).toBe(0);
  });

  it("row 24 (ratio): a partial refund takes ceil(granted × ratio), its own lot first", async () => {
    const db = database.current();
    const ledger = ledgerOf(db);
    const u = user();
    await applyAt(db, [pack(u, 300, `${u}:pack`), period(u, 1001, `${u}:p1`, T0, at(T0, 30))], T0);
    await applyAt(db, [spend(u, 500)], at(T0, 1));
    const result = await atClock(db, at(T0, 2), (executor) =>
      ledger.refundPurchase({ storeRef: `${u}:p1`, metadata: {}, ratio: 0.5 }, { executor }),
    );
    expect(result).toMatchObject({ target: 501, fromLot: 501, fromOthers: 0, shortfall: 0, recovered: 501 });
    expect(await expectConsistent(db, u)).toBe(300);
  });

  it("row 25: a refund of a period whose lot already expired counts the expired part as returned", async () => {
    const db = database.current();
    const ledger = ledgerOf(db);
    const u = user();
    await applyAt(db, [period(u, 1000, `${u}:p1`, T0, at(T0, 30))], T0);
    await applyAt(db, [spend(u, 300)], at(T0, 1));
    await applyAt(db, [period(u, 1000, `${u}:p2`, at(T0, 30), at(T0, 60))], at(T0, 30));
    const result = await atClock(db, at(T0, 31), (executor) =>
      ledger.refundPurchase({ storeRef: `${u}:p1`, metadata: {} }, { executor }),
    );
    expect(result).toMatchObject({
      target: 1000,
      fromLot: 0,
      alreadyExpired: 700,
      fromOthers: 300,
      shortfall: 0,
    });
    expect((await lotsOf(db, u)).map((lot) => [lot.remaining, lot.expired])).toEqual([
      [0, 700],
      [700, 0],
    ]);
    expect(await expectConsistent(db, u)).toBe(700);
  });

  it("row 27: REFUND_REVERSED gives back exactly what was taken, into the lots it came from; past a lot's end, grant + expire", async () => {
    const db = database.current();
    const ledger = ledgerOf(db);
    const u = user();
    await applyAt(db, [pack(u, 300, `${u}:pack`), period(u, 1000, `${u}:p1`, T0, at(T0, 30))], T0);
    await applyAt(db, [spend(u, 500)], at(T0, 1));
    await atClock(db, at(T0, 2), (executor) =>
      ledger.refundPurchase({ storeRef: `${u}:p1`, metadata: {} }, { executor }),
    );
    // Reversed after the period's end: the pack's 300 come back; the period's 500 come back and expire.
    const reversal = await atClock(db, at(T0, 40), (executor) =>
      ledger.reverseRefund({ storeRef: `${u}:p1`, metadata: {} }, { executor }),
    );
    expect(reversal.status).toBe("reversed");
    const entries = (await entriesOf(db, u)).map((entry) => [entry.kind, entry.amount]);
    expect(entries.slice(-2)).toEqual([
      ["REFUND_REVERSAL", 800],
      ["EXPIRE", -500],
    ]);
    expect((await lotsOf(db, u)).map((lot) => [lot.source, lot.remaining, lot.expired])).toEqual([
      ["pack", 300, 0],
      ["period", 0, 500],
    ]);
    expect(await expectConsistent(db, u)).toBe(300);
    expect((await ledger.reverseRefund({ storeRef: `${u}:p1`, metadata: {} })).status).toBe("duplicate");
  });

  it("row 27 (in time): reversed before the period's end, the period's part is spendable again until its end", async () => {
    const db = database.current();
    const ledger = ledgerOf(db);
    const u = user();
    await applyAt(db, [period(u, 1000, `${u}:p1`, T0, at(T0, 30))], T0);
    await applyAt(db, [spend(u, 200)], at(T0, 1));
    await atClock(db, at(T0, 2), (executor) =>
      ledger.refundPurchase({ storeRef: `${u}:p1`, metadata: {} }, { executor }),
    );
    await atClock(db, at(T0, 3), (executor) =>
      ledger.reverseRefund({ storeRef: `${u}:p1`, metadata: {} }, { executor }),
    );
    const [lot] = await lotsOf(db, u);
    expect(lot).toMatchObject({ remaining: 800, expiresAt: at(T0, 30).toISOString() });
    expect(await expectConsistent(db, u)).toBe(800);
  });

  it("row 28: a refund of a part-spent pack takes its lot, then other lots soonest-expiring first, keeping non-expiring tokens", async () => {
    const db = database.current();
    const ledger = ledgerOf(db);
    const u = user();
    await applyAt(db, [pack(u, 100, `${u}:pack`)], T0);
    await applyAt(db, [spend(u, 60)], T0);
    await applyAt(db, [grant(u, 100), period(u, 50, `${u}:p1`, T0, at(T0, 30))], T0);
    const result = await atClock(db, at(T0, 1), (executor) =>
      ledger.refundPurchase({ storeRef: `${u}:pack`, metadata: {} }, { executor }),
    );
    expect(result).toMatchObject({ target: 100, fromLot: 40, fromOthers: 60, shortfall: 0 });
    expect((await lotsOf(db, u)).map((lot) => [lot.source, lot.remaining])).toEqual([
      ["pack", 0],
      ["grant", 90],
      ["period", 0],
    ]);
    expect(await expectConsistent(db, u)).toBe(90);
  });

  it("row 23 (ledger part): a refund hits the lot's owner, whoever the request names", async () => {
    const db = database.current();
    const u = user();
    const other = user();
    await applyAt(db, [period(u, 100, `${u}:p1`, T0, at(T0, 30)), grant(other, 50)], T0);
    const [outcome] = await applyAt(
      db,
      [
        {
          userId: other,
          delta: 0,
          kind: "REFUND",
          description: null,
          op: "refund",
          lot: { ref: `${u}:p1` },
          externalRef: `${u}:p1`,
        },
      ],
      at(T0, 1),
    );
    expect(outcome?.status === "applied" && outcome.entry.userId).toBe(u);
    expect(await expectConsistent(db, u)).toBe(0);
    expect(await expectConsistent(db, other)).toBe(50);
  });

  it("rows 19 and 20 (ledger part): extend moves the end later with a 0 move; a cut to a past end expires the free remainder", async () => {
    const db = database.current();
    const ledger = ledgerOf(db);
    const u = user();
    await applyAt(db, [period(u, 100, `${u}:p1`, T0, at(T0, 30))], T0);
    const extended = await atClock(db, at(T0, 1), (executor) =>
      ledger.extendLot({ storeRef: `${u}:p1`, expiresAt: at(T0, 40) }, { executor }),
    );
    expect(extended).toEqual({ status: "changed", expired: 0, balance: 100 });
    expect((await lotsOf(db, u))[0]?.expiresAt).toBe(at(T0, 40).toISOString());
    // Spendable past the old end.
    expect((await applyAt(db, [spend(u, 10)], at(T0, 35)))[0]?.status).toBe("applied");
    const notLater = await ledger.extendLot({ storeRef: `${u}:p1`, expiresAt: at(T0, 39) });
    expect(notLater.status).toBe("unchanged");
    const cut = await atClock(db, at(T0, 36), (executor) =>
      ledger.cutLot({ storeRef: `${u}:p1`, expiresAt: at(T0, 36) }, { executor }),
    );
    expect(cut).toEqual({ status: "changed", expired: 90, balance: 0 });
    expect((await ledger.cutLot({ storeRef: "no-such-ref", expiresAt: T0 })).status).toBe("no-lot");
    expect(await expectConsistent(db, u)).toBe(0);
  });

  it("legacy imports and admin grants open non-expiring lots through the same path", async () => {
    const db = database.current();
    const ledger = ledgerOf(db);
    const u = user();
    await ledger.importLegacy({ customerId: `c-${u}`, userId: u, tokens: 40, metadata: {} });
    await ledger.grant({ userId: u, amount: 5, reason: "goodwill" }, "admin");
    expect((await lotsOf(db, u)).map((lot) => [lot.source, lot.expiresAt])).toEqual([
      ["legacy", null],
      ["grant", null],
    ]);
    expect(await expectConsistent(db, u)).toBe(45);
  });

  it("the sweeper expires due lots by group commit; two sweeping at once expire each lot once", async () => {
    const db = database.current();
    const ledger = ledgerOf(db);
    const users = [user(), user(), user()];
    const past = new Date(Date.now() - 60_000);
    for (const u of users) {
      await applyAt(
        db,
        [grant(u, 1), period(u, 10, `${u}:p1`, new Date(Date.now() - 120_000), past)],
        new Date(Date.now() - 90_000),
      );
    }
    const seen = { expired: 0, lag: -1 };
    const metrics = {
      expired: (n: number) => (seen.expired += n),
      lag: (s: number) => (seen.lag = Math.max(seen.lag, s)),
    };
    const logger = pino({ level: "silent" });
    const one = createExpirySweeper({
      database: db.handle,
      ledger,
      intervalMs: 0,
      logger,
      metrics,
      batchSize: 2,
    });
    const two = createExpirySweeper({
      database: db.handle,
      ledger: ledgerOf(db),
      intervalMs: 0,
      logger,
      metrics,
    });
    await Promise.all([one.runOnce(), two.runOnce()]);
    expect(seen.expired).toBeGreaterThanOrEqual(30);
    expect(seen.lag).toBeGreaterThanOrEqual(59);
    for (const u of users) {
      const expires = (await entriesOf(db, u)).filter((entry) => entry.kind === "EXPIRE");
      expect(expires.map((entry) => entry.amount)).toEqual([-10]);
      expect(await expectConsistent(db, u)).toBe(1);
    }
    expect(await one.runOnce()).toEqual({ users: 0, tokens: 0 });
  });
});
