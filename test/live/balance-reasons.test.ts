import { sql } from "drizzle-orm";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLedgerService } from "../../src/modules/ledger/ledger.service.js";
import { newUserId } from "../helpers/app.js";
import { driverName } from "../helpers/database.js";
import { BalanceSubscription, wsClient } from "../helpers/live.js";
import { deliver, fixture } from "../helpers/revenuecat.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

// What a balanceChanged event says beyond the balance: why it changed, held and available, and the
// tokens that will expire; and what the live module does with a notification it cannot trust.

const EVENT = `subscription {
  balanceChanged {
    balance held available delta reason version
    expiring { amount expiresAt sources } nextExpiry { amount expiresAt }
    current { balance held available expiring { amount } }
    transaction { kind }
  }
}`;

let t: TestServer;
const open: BalanceSubscription[] = [];

beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => {
  await Promise.all(open.map((subscription) => subscription.close().catch(() => undefined)));
  await t.close();
});

const ledger = () => createLedgerService({ database: t.db.handle, logger: pino({ level: "silent" }) });

async function subscribe(userId: string): Promise<BalanceSubscription> {
  const token = await t.token(userId);
  const subscription = new BalanceSubscription(wsClient(t.url, `Bearer ${token}`), EVENT);
  open.push(subscription);
  return subscription;
}

const notify = (payload: string) =>
  t.db.handle.db.execute(sql`SELECT pg_notify('token_balance_changed', ${payload})`);

describe(`balanceChanged's reason, held, available and expiring on ${driverName}`, () => {
  it("says why each change happened: SNAPSHOT, GRANT, PURCHASE, SPEND, ADJUSTMENT", async () => {
    const userId = newUserId();
    const subscription = await subscribe(userId);
    expect(await subscription.next()).toMatchObject({
      balance: 0,
      held: 0,
      available: 0,
      reason: "SNAPSHOT",
      expiring: [],
      nextExpiry: null,
      transaction: null,
    });
    await ledger().grant({ userId, amount: 50, reason: "welcome" }, "ops");
    expect(await subscription.next()).toMatchObject({
      balance: 50,
      available: 50,
      delta: 50,
      reason: "GRANT",
      expiring: [],
      current: { balance: 50, held: 0, available: 50, expiring: [] },
      transaction: { kind: "GRANT" },
    });
    const body = fixture("NON_RENEWING_PURCHASE__rc-docs", {
      app_user_id: userId,
      product_id: "token_pack_small",
    });
    expect((await deliver(t.url, body)).body.outcome).toBe("credited");
    expect(await subscription.next()).toMatchObject({ balance: 150, reason: "PURCHASE" });
    await ledger().spend(userId, { amount: 30, description: "boost" });
    expect(await subscription.next()).toMatchObject({ balance: 120, delta: -30, reason: "SPEND" });
    await ledger().adjust({ userId, amount: -20, reason: "correction" }, "ops");
    expect(await subscription.next()).toMatchObject({ balance: 100, reason: "ADJUSTMENT" });
  });

  it("names the reason from the entry when a notification has no kind (a money function older than lots)", async () => {
    const userId = newUserId();
    const { entry } = await ledger().grant({ userId, amount: 10, reason: "setup" }, "ops");
    const subscription = await subscribe(userId);
    expect(await subscription.next()).toMatchObject({ version: 1, reason: "SNAPSHOT" });
    // What an instance still running the previous money function would announce during an upgrade.
    const old = {
      userId,
      balance: 10,
      delta: 10,
      version: 2,
      entryId: entry.id,
      at: new Date().toISOString(),
    };
    await notify(JSON.stringify([old]));
    expect(await subscription.next()).toMatchObject({ version: 2, reason: "GRANT", held: 0, available: 10 });
  });

  it("logs and drops a malformed notification; the events after it still arrive, in order", async () => {
    const userId = newUserId();
    await ledger().grant({ userId, amount: 10, reason: "setup" }, "ops");
    const subscription = await subscribe(userId);
    expect(await subscription.next()).toMatchObject({ balance: 10, version: 1, reason: "SNAPSHOT" });

    const forged = { userId, balance: 1_000_000, delta: 999_990, version: 2, entryId: 1, at: "now" };
    await notify("{not json");
    await notify(JSON.stringify({ ...forged, at: new Date().toISOString() }));
    await notify(JSON.stringify([forged, null, { ...forged, balance: "a lot" }]));
    expect(await subscription.drain(300)).toEqual([]);

    await ledger().grant({ userId, amount: 5, reason: "after" }, "ops");
    expect(await subscription.next()).toMatchObject({ balance: 15, version: 2, reason: "GRANT" });
    expect(subscription.errors).toEqual([]);
    const messages = t.logs.messages();
    expect(messages).toContain("dropped a balance notification that is not JSON");
    expect(messages).toContain("dropped a balance notification that is not an array");
    expect(messages.filter((m) => m === "dropped a malformed change of a balance notification")).toHaveLength(
      3,
    );
  });
});
