import { sql } from "drizzle-orm";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLedgerService } from "../../src/modules/ledger/ledger.service.js";
import { newUserId } from "../helpers/app.js";
import { driverName, serverUrl } from "../helpers/database.js";
import { BalanceSubscription, wsClient } from "../helpers/live.js";
import { type ServerProcess, startServerProcess } from "../helpers/process.js";
import { deliver, fixture } from "../helpers/revenuecat.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

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

async function subscribe(userId: string, baseUrl = t.url): Promise<BalanceSubscription> {
  const token = await t.token(userId);
  const subscription = new BalanceSubscription(wsClient(baseUrl, `Bearer ${token}`));
  open.push(subscription);
  return subscription;
}

describe(`balanceChanged over graphql-ws on ${driverName}`, () => {
  it("starts with the current balance (delta 0, no transaction)", async () => {
    const userId = newUserId();
    await ledger().grant({ userId, amount: 42, reason: "setup" }, "test");
    const subscription = await subscribe(userId);
    expect(await subscription.next()).toMatchObject({ balance: 42, delta: 0, version: 1, transaction: null });
  });

  it("sends a purchase credit and a spend with delta, version and the entry", async () => {
    const userId = newUserId();
    const subscription = await subscribe(userId);
    expect(await subscription.next()).toMatchObject({ balance: 0, version: 0 });

    const body = fixture("NON_RENEWING_PURCHASE__rc-docs", {
      app_user_id: userId,
      product_id: "token_pack_small",
    });
    expect((await deliver(t.url, body)).body.outcome).toBe("credited");
    expect(await subscription.next()).toMatchObject({
      balance: 100,
      delta: 100,
      version: 1,
      transaction: { amount: 100, kind: "PURCHASE", balanceAfter: 100 },
    });

    const token = await t.token(userId);
    await t.gql(
      'mutation { spendTokens(input: { amount: 30, description: "live" }) { success } }',
      {},
      token,
    );
    expect(await subscription.next()).toMatchObject({
      balance: 70,
      delta: -30,
      version: 2,
      transaction: { amount: -30, kind: "SPEND" },
    });
  });

  it("delivers 20 concurrent spends once each, in version order", async () => {
    const userId = newUserId();
    await ledger().grant({ userId, amount: 100, reason: "setup" }, "test");
    const subscription = await subscribe(userId);
    await subscription.next();
    const service = ledger();
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => service.spend(userId, { amount: 1, description: `c${i}` })),
    );
    const events = [];
    for (let i = 0; i < 20; i += 1) events.push(await subscription.next());
    expect(events.map((event) => event.version)).toEqual(Array.from({ length: 20 }, (_, i) => i + 2));
    expect(events.map((event) => event.balance)).toEqual(Array.from({ length: 20 }, (_, i) => 99 - i));
    expect(await subscription.drain()).toEqual([]);
  });

  it("a user never receives another user's events", async () => {
    const alice = newUserId("alice");
    const bob = newUserId("bob");
    const aliceSubscription = await subscribe(alice);
    await aliceSubscription.next();
    await ledger().grant({ userId: bob, amount: 5, reason: "bob only" }, "test");
    await ledger().grant({ userId: alice, amount: 7, reason: "alice" }, "test");
    expect(await aliceSubscription.next()).toMatchObject({ balance: 7, delta: 7 });
    expect(await aliceSubscription.drain()).toEqual([]);
  });

  it("sends nothing for a rolled-back write", async () => {
    const userId = newUserId();
    await ledger().grant({ userId, amount: 10, reason: "setup" }, "test");
    const subscription = await subscribe(userId);
    expect(await subscription.next()).toMatchObject({ version: 1 });
    await expect(
      t.db.handle.db.transaction(async (tx) => {
        await ledger().spend(userId, { amount: 5, description: "rolled back" }, { executor: tx });
        throw new Error("roll back");
      }),
    ).rejects.toThrow("roll back");
    expect(await subscription.drain(500)).toEqual([]);
    await ledger().spend(userId, { amount: 1, description: "real" });
    expect(await subscription.next()).toMatchObject({ balance: 9, delta: -1, version: 2 });
  });

  it("refuses a connection without a token or with a forged one, with close code 4401", async () => {
    // Flip a character in the middle of the signature (the last one may only carry padding bits).
    const [header, payload, signature = ""] = (await t.token(newUserId())).split(".");
    const middle = Math.floor(signature.length / 2);
    const flipped = signature[middle] === "A" ? "B" : "A";
    const forged = `${header}.${payload}.${signature.slice(0, middle)}${flipped}${signature.slice(middle + 1)}`;
    for (const authorization of [undefined, `Bearer ${forged}`, "Bearer not-a-jwt"]) {
      let closed: { code: number; reason: string } | undefined;
      const subscription = new BalanceSubscription(
        wsClient(t.url, authorization, (code, reason) => {
          closed = { code, reason };
        }),
      );
      await expect(subscription.next(3000)).rejects.toThrow();
      expect(closed?.code).toBe(4401);
      expect(closed?.reason).toMatch(/Unauthorized/);
      await subscription.close();
    }
  });

  it("closes the socket with 4403 (which graphql-ws clients retry) when the token expires", async () => {
    const userId = newUserId();
    const token = await t.token(userId, { expiresIn: Math.floor(Date.now() / 1000) + 2 });
    let closed: { code: number; reason: string } | undefined;
    const subscription = new BalanceSubscription(
      wsClient(t.url, `Bearer ${token}`, (code, reason) => {
        closed = { code, reason };
      }),
    );
    open.push(subscription);
    expect(await subscription.next()).toMatchObject({ balance: 0 });
    const deadline = Date.now() + 6000;
    while (!closed && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(closed).toEqual({ code: 4403, reason: "Unauthorized: token expired" });
  });

  it("limits subscriptions per connection", async () => {
    const token = await t.token(newUserId());
    const client = wsClient(t.url, `Bearer ${token}`);
    const subscriptions = Array.from({ length: 21 }, () => new BalanceSubscription(client));
    open.push(...subscriptions);
    const outcomes = await Promise.allSettled(subscriptions.map((subscription) => subscription.next(3000)));
    expect(outcomes.filter((outcome) => outcome.status === "fulfilled")).toHaveLength(20);
    const refused = outcomes.find((outcome) => outcome.status === "rejected") as PromiseRejectedResult;
    expect(String(refused.reason)).toMatch(/At most 20 subscriptions/);
  });

  it("works over server-sent events too", async () => {
    const userId = newUserId();
    await ledger().grant({ userId, amount: 3, reason: "setup" }, "test");
    const controller = new AbortController();
    const response = await fetch(`${t.url}/graphql`, {
      method: "POST",
      headers: {
        accept: "text/event-stream",
        "content-type": "application/json",
        authorization: `Bearer ${await t.token(userId)}`,
      },
      body: JSON.stringify({ query: "subscription { balanceChanged { balance delta version } }" }),
      signal: controller.signal,
    });
    expect(response.headers.get("content-type")).toMatch(/text\/event-stream/);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    let text = "";
    while (!text.includes('"balanceChanged"')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    controller.abort();
    expect(text).toContain('{"data":{"balanceChanged":{"balance":3,"delta":0,"version":1}}}');
  });

  it("SSE without a token is refused", async () => {
    const response = await fetch(`${t.url}/graphql`, {
      method: "POST",
      headers: { accept: "text/event-stream", "content-type": "application/json" },
      body: JSON.stringify({ query: "subscription { balanceChanged { balance } }" }),
    });
    const text = await response.text();
    expect(text).toContain("UNAUTHENTICATED");
  });
});

describe.skipIf(!serverUrl)("balanceChanged across instances (real PostgreSQL)", () => {
  let second: ServerProcess;
  let childUrl: string;

  beforeAll(async () => {
    second = await startServerProcess({ DATABASE_URL: t.db.url });
    childUrl = second.url;
  });

  afterAll(async () => {
    await second.stop();
  });

  it("a webhook on one instance reaches a subscriber on the other", async () => {
    const userId = newUserId();
    const subscription = await subscribe(userId, childUrl);
    expect(await subscription.next()).toMatchObject({ balance: 0 });
    const body = fixture("NON_RENEWING_PURCHASE__rc-docs", {
      app_user_id: userId,
      product_id: "token_pack_medium",
    });
    expect((await deliver(t.url, body)).body.outcome).toBe("credited");
    expect(await subscription.next()).toMatchObject({ balance: 500, delta: 500, version: 1 });
  });

  it("a spend on the other instance reaches a subscriber here", async () => {
    const userId = newUserId();
    await ledger().grant({ userId, amount: 10, reason: "setup" }, "test");
    const subscription = await subscribe(userId);
    await subscription.next();
    const response = await fetch(`${childUrl}/api/v1/tokens/spend`, {
      method: "POST",
      headers: { authorization: `Bearer ${await t.token(userId)}`, "content-type": "application/json" },
      body: JSON.stringify({ amount: 4, description: "from the other instance" }),
    });
    expect(response.status).toBe(200);
    expect(await subscription.next()).toMatchObject({ balance: 6, delta: -4, version: 2 });
  });

  it("re-sends the current balance after the listening connection was cut", async () => {
    const userId = newUserId();
    await ledger().grant({ userId, amount: 10, reason: "setup" }, "test");
    const subscription = await subscribe(userId);
    await subscription.next();
    // Cut every LISTEN connection of this database, then change the balance while they are down.
    await t.db.handle.db.execute(
      sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
           WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()`,
    );
    await ledger().spend(userId, { amount: 3, description: "while the listener was down" });
    let latest = await subscription.next(15_000);
    while (latest.balance !== 7) latest = await subscription.next(15_000);
    expect(latest).toMatchObject({ balance: 7, version: 2 });
  });
});
