import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { revenuecatEventsTable } from "../../src/db/schema.js";
import { getBalance } from "../../src/modules/ledger/ledger.queries.js";
import { newUserId, startTestApp, type TestApp } from "../helpers/app.js";
import { driverName, openTestDatabase, type TestDatabase } from "../helpers/database.js";
import { balanceOf as balanceOfUser } from "../helpers/ledger.js";
import { type Delivery, deliver, fixture } from "../helpers/revenuecat.js";

/**
 * RevenueCat does not promise order, and retries make late deliveries common: a purchase, its refund
 * and the refund's reversal must end in the same balance whatever order they arrive in, also when
 * they arrive at the same moment.
 */

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

const balanceOf = (userId: string) => balanceOfUser(t.db.handle.db, userId);

interface StoreTransaction {
  purchase: Delivery;
  refund: Delivery;
  reversal: Delivery;
}

/** A token pack purchase (100 tokens), its refund and the refund's reversal, all for one store transaction. */
function storeTransaction(userId: string): StoreTransaction {
  const purchase = fixture("NON_RENEWING_PURCHASE__rc-docs", {
    app_user_id: userId,
    product_id: "token_pack_small",
  });
  const same = { transaction_id: purchase.event.transaction_id, store: purchase.event.store };
  return {
    purchase,
    refund: fixture("CANCELLATION__rc-docs-refund", { app_user_id: userId, aliases: [userId], ...same }),
    reversal: fixture("REFUND_REVERSED__rc-docs", { app_user_id: userId, ...same }),
  };
}

describe(`webhook ordering on ${driverName}`, () => {
  it("150 purchase/refund pairs delivered at the same moment: no refund is lost, every balance ends at 0", async () => {
    const pairs = Array.from({ length: 150 }, () => {
      const userId = newUserId();
      return { userId, ...storeTransaction(userId) };
    });
    const answers = await Promise.all(
      pairs.map(async (pair) => {
        const [purchase, refund] = await Promise.all([
          deliver(t.url, pair.purchase),
          deliver(t.url, pair.refund),
        ]);
        return { purchase: purchase.body.outcome, refund: refund.body.outcome };
      }),
    );
    // Either the purchase came first and the refund took it back, or the refund came first and the
    // purchase was held back. Never a credited purchase beside an unmatched refund.
    for (const answer of answers) {
      expect([
        { purchase: "credited", refund: "refunded" },
        { purchase: "held", refund: "unmatched" },
      ]).toContainEqual(answer);
    }
    const balances = await Promise.all(pairs.map((pair) => balanceOf(pair.userId)));
    expect(balances).toEqual(Array(150).fill(0));
  });

  const orders: [string, number, (keyof StoreTransaction)[]][] = [
    ["purchase, refund, reversal", 100, ["purchase", "refund", "reversal"]],
    ["purchase, reversal, refund", 100, ["purchase", "reversal", "refund"]],
    ["refund, purchase, reversal", 100, ["refund", "purchase", "reversal"]],
    ["refund, reversal, purchase", 100, ["refund", "reversal", "purchase"]],
    ["reversal, refund, purchase", 100, ["reversal", "refund", "purchase"]],
    ["reversal, purchase, refund", 100, ["reversal", "purchase", "refund"]],
    ["refund, purchase", 0, ["refund", "purchase"]],
    ["purchase, refund", 0, ["purchase", "refund"]],
  ];

  it.each(orders)(
    "%s: the balance ends at %s tokens, and redelivering everything changes nothing",
    async (_name, expected, order) => {
      const userId = newUserId();
      const events = storeTransaction(userId);
      for (const name of order) expect((await deliver(t.url, events[name])).status).toBe(200);
      expect(await balanceOf(userId)).toBe(expected);
      for (const name of order) await deliver(t.url, events[name]);
      expect(await balanceOf(userId)).toBe(expected);
    },
  );

  it("the three events of a store transaction delivered at once, 40 times over: each ends at 100", async () => {
    const runs = Array.from({ length: 40 }, () => {
      const userId = newUserId();
      return { userId, events: storeTransaction(userId) };
    });
    await Promise.all(
      runs.map(({ events }) =>
        Promise.all([events.purchase, events.refund, events.reversal].map((e) => deliver(t.url, e))),
      ),
    );
    // Whatever order the database saw, a refund that was reversed leaves the purchase credited.
    expect(await Promise.all(runs.map((run) => balanceOf(run.userId)))).toEqual(Array(40).fill(100));
  });
});

describe(`a delivery whose first attempt failed on ${driverName}`, () => {
  let database: TestDatabase;
  let app: TestApp;
  beforeAll(async () => {
    database = await openTestDatabase();
    app = await startTestApp({}, database);
  });
  afterAll(async () => {
    await app.close();
    await database.close();
  });

  it("records every event column on every attempt, so an early refund still holds its purchase back", async () => {
    const userId = newUserId();
    const events = storeTransaction(userId);
    // The refund's first attempt fails the way a broken database would.
    await database.handle.db.execute(
      sql.raw("ALTER TABLE token_transactions RENAME TO token_transactions_away"),
    );
    try {
      expect((await deliver(app.url, events.refund)).status).toBeGreaterThanOrEqual(500);
    } finally {
      await database.handle.db.execute(
        sql.raw("ALTER TABLE token_transactions_away RENAME TO token_transactions"),
      );
    }
    const [failed] = await database.handle.db
      .select()
      .from(revenuecatEventsTable)
      .where(eq(revenuecatEventsTable.eventId, events.refund.event.id));
    expect(failed).toMatchObject({
      outcome: "failed",
      transactionId: events.refund.event.transaction_id,
      store: events.refund.event.store,
      appUserId: userId,
    });

    expect((await deliver(app.url, events.refund)).body.outcome).toBe("unmatched");
    expect((await deliver(app.url, events.purchase)).body.outcome).toBe("held");
    expect((await getBalance(database.handle.db, userId)).balance).toBe(0);
  });
});
