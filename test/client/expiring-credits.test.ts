import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { createTokenClient, type TokenClient } from "../../src/client/index.js";
import { newUserId } from "../helpers/app.js";
import { driverName } from "../helpers/database.js";
import { deliver, fixture } from "../helpers/revenuecat.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { applyAt, period } from "../ledger/lots-helpers.js";
import { record, until } from "./helpers/clients.js";

// Issue 18, done when: a user with a monthly subscription sees the tokens arrive on renewal and the
// unused remainder leave at the period's end, live, through @token-ledger/client (its real graphql-ws
// client) against a real server. Once through RevenueCat's webhook (documented INITIAL_PURCHASE and
// RENEWAL bodies for a product configured as a monthly grant), once with ledger-level credits that
// carry their end (the money function alone). A period ends a few seconds away instead of a month;
// the server's own expiry sweeper writes the EXPIRE.

let t: TestServer;
const clients: TokenClient[] = [];

beforeAll(async () => {
  t = await startTestServer({
    // The expiry sweeper every half second instead of every 15 s, so the test need not wait long.
    EXPIRY_SWEEP_INTERVAL_MS: "500",
    PRODUCT_TOKEN_MAP: JSON.stringify({ pro_monthly: { tokens: 1000, expires: "period_end" } }),
  });
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.dispose()));
});
afterAll(async () => {
  await t.close();
});

async function clientFor(userId: string): Promise<TokenClient> {
  const token = await t.token(userId);
  const client = createTokenClient({ url: `${t.url}/graphql`, getToken: () => token, WebSocket });
  clients.push(client);
  return client;
}

const at = (ms: number) => new Date(Date.now() + ms);

/** Resolves once the subscription's first event (the balance now, no entry) has arrived. */
function started(client: TokenClient): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = client.watchEntries((entry) => {
      if (entry === null) resolve();
      stop();
    });
  });
}

/** RevenueCat's documented delivery of one period of the user's pro_monthly subscription. */
function periodDelivery(userId: string, type: "INITIAL_PURCHASE" | "RENEWAL", from: Date, to: Date) {
  return fixture(`${type}__rc-docs`, {
    app_user_id: userId,
    original_app_user_id: userId,
    aliases: [userId],
    product_id: "pro_monthly",
    store: "APP_STORE",
    original_transaction_id: `${userId}-original`,
    transaction_id: `${userId}-${type}`,
    purchased_at_ms: from.getTime(),
    expiration_at_ms: to.getTime(),
    event_timestamp_ms: from.getTime(),
  });
}

describe(`a monthly subscription's tokens in the app, live, on ${driverName}`, () => {
  it("through RevenueCat's webhook: the period's tokens arrive, then the renewal's, and the unused remainder leaves", async () => {
    const userId = newUserId();
    const client = await clientFor(userId);
    const { states } = record(client);
    await started(client);
    await until(client, (state) => state.balance === 0 && state.live);

    const end1 = at(4_000);
    const first = await deliver(t.url, periodDelivery(userId, "INITIAL_PURCHASE", new Date(), end1));
    expect(first.body.outcome).toBe("credited");
    expect(await until(client, (state) => state.balance === 1000)).toMatchObject({
      lastChange: { reason: "PURCHASE", delta: 1000 },
      nextExpiry: { amount: 1000, expiresAt: end1.toISOString(), sources: ["PERIOD"] },
    });
    expect(await client.spendTokens({ amount: 300, description: "three hints" })).toMatchObject({
      success: true,
      newBalance: 700,
    });

    const end2 = at(3_600_000);
    const renewal = await deliver(t.url, periodDelivery(userId, "RENEWAL", end1, end2));
    expect(renewal.body.outcome).toBe("credited");
    const renewed = await until(client, (state) => state.balance === 1700 && state.pending === 0);
    expect(renewed).toMatchObject({ lastChange: { reason: "PURCHASE", delta: 1000, version: 3 } });
    expect(renewed.expiring).toEqual([
      { amount: 700, expiresAt: end1.toISOString(), sources: ["PERIOD"] },
      { amount: 1000, expiresAt: end2.toISOString(), sources: ["PERIOD"] },
    ]);

    const expired = await until(client, (state) => state.lastChange?.reason === "EXPIRE", 15_000);
    expect(Date.now()).toBeGreaterThanOrEqual(end1.getTime());
    expect(expired).toMatchObject({
      balance: 1000,
      version: 4,
      lastChange: { reason: "EXPIRE", delta: -700 },
      expiring: [{ amount: 1000, expiresAt: end2.toISOString(), sources: ["PERIOD"] }],
    });
    const shown = states
      .map((state) => state.confirmedBalance)
      .filter((balance, i, all) => balance !== all[i - 1]);
    expect(shown).toEqual([null, 0, 1000, 700, 1700, 1000]);
  });

  it("with ledger-level credits: the period's tokens arrive, the renewal's too, and the unused remainder leaves", async () => {
    const userId = newUserId();
    const chain = { chain: `APP_STORE:${userId}:original`, product: "pro_monthly" };
    const client = await clientFor(userId);
    const { states } = record(client);
    await started(client);
    await until(client, (state) => state.balance === 0 && state.live);

    // The first period: 1000 tokens until its end.
    const end1 = at(4_000);
    await applyAt(t.db, [period(userId, 1000, `APP_STORE:${userId}:1`, new Date(), end1, chain)]);
    const credited = await until(client, (state) => state.balance === 1000);
    expect(credited).toMatchObject({
      available: 1000,
      held: 0,
      lastChange: { reason: "PURCHASE", delta: 1000, version: 1 },
      nextExpiry: { amount: 1000, expiresAt: end1.toISOString(), sources: ["PERIOD"] },
    });

    // The user spends 300 in the app: they come out of the expiring period.
    const spent = await client.spendTokens({ amount: 300, description: "three hints" });
    expect(spent).toMatchObject({ success: true, newBalance: 700 });
    await until(client, (state) => state.lastChange?.reason === "SPEND" && state.pending === 0);
    expect(client.getSnapshot()).toMatchObject({ balance: 700, nextExpiry: { amount: 700 } });

    // The renewal: the next period's 1000 tokens arrive while the first period is still running.
    const end2 = at(3_600_000);
    await applyAt(t.db, [period(userId, 1000, `APP_STORE:${userId}:2`, end1, end2, chain)]);
    const renewed = await until(client, (state) => state.balance === 1700);
    expect(renewed).toMatchObject({ lastChange: { reason: "PURCHASE", delta: 1000, version: 3 } });
    expect(renewed.expiring).toEqual([
      { amount: 700, expiresAt: end1.toISOString(), sources: ["PERIOD"] },
      { amount: 1000, expiresAt: end2.toISOString(), sources: ["PERIOD"] },
    ]);

    // The first period ends: the server's sweeper expires its 700 unused tokens, and they leave live.
    const expired = await until(client, (state) => state.lastChange?.reason === "EXPIRE", 15_000);
    expect(Date.now()).toBeGreaterThanOrEqual(end1.getTime());
    expect(expired).toMatchObject({
      balance: 1000,
      available: 1000,
      version: 4,
      lastChange: { reason: "EXPIRE", delta: -700, version: 4 },
      expiring: [{ amount: 1000, expiresAt: end2.toISOString(), sources: ["PERIOD"] }],
      nextExpiry: { amount: 1000, expiresAt: end2.toISOString() },
    });
    // What the screen showed, in order: nothing yet, the period, the spend, the renewal, the expiry.
    const shown = states
      .map((state) => state.confirmedBalance)
      .filter((balance, i, all) => balance !== all[i - 1]);
    expect(shown).toEqual([null, 0, 1000, 700, 1700, 1000]);
    // A fresh read agrees.
    expect(await client.getBalance()).toMatchObject({ balance: 1000, version: 4 });
  });
});
