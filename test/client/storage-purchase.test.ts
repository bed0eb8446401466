import { describe, expect, it } from "vitest";
import type { StorageLike } from "../../src/client/index.js";
import { driverName } from "../helpers/database.js";
import {
  countingFetch,
  disposeClientsAfterEach,
  makeClient,
  record,
  sleep,
  until,
} from "./helpers/clients.js";
import { useLedgerServer } from "./helpers/ledger-server.js";
import { kindOf, tapWebSocket, versionOf } from "./helpers/sockets.js";

const server = useLedgerServer();
disposeClientsAfterEach();

/** AsyncStorage's behaviour (asynchronous, strings only) over a Map. */
function memoryStorage(): StorageLike & { items: Map<string, string> } {
  const items = new Map<string, string>();
  return {
    items,
    getItem: async (key) => items.get(key) ?? null,
    setItem: async (key, value) => {
      items.set(key, value);
    },
  };
}

describe(`stored balance on ${driverName}`, () => {
  it("shows the stored balance at once as stale, then the fresh one", async () => {
    const { userId, token } = await server.fundUser(500);
    const storage = memoryStorage();
    const first = makeClient(server, token, { storage });
    await first.getBalance();
    await first.dispose();
    await expect.poll(() => storage.items.size).toBe(1);
    await server.purchase(userId);

    const second = makeClient(server, token, { storage });
    const { states } = record(second);
    await until(second, (state) => state.balance === 600 && !state.stale);
    const shown = states.filter((state) => state.balance !== null);
    expect(shown[0]).toMatchObject({ balance: 500, stale: true, loading: false, version: 1 });
    expect(shown.at(-1)).toMatchObject({ balance: 600, stale: false, version: 2 });
    await expect
      .poll(() => JSON.parse(storage.items.get("token-ledger:balance") ?? "{}"))
      .toMatchObject({
        user: userId,
        balance: 600,
        version: 2,
      });
  });

  it("shows a balance stored by an older client, and leaves out stored expiries already past", async () => {
    const { userId, token } = await server.fundUser(500);
    const storage = memoryStorage();
    const future = new Date(Date.now() + 3_600_000).toISOString();
    const past = new Date(Date.now() - 1000).toISOString();
    // An older client stored neither held nor available; this one's list may have aged meanwhile.
    await storage.setItem(
      "token-ledger:balance",
      JSON.stringify({
        user: userId,
        balance: 500,
        version: 1,
        lastUpdated: past,
        expiring: [
          { amount: 100, expiresAt: past, sources: ["PERIOD"] },
          { amount: 50, expiresAt: future, sources: ["PERIOD"] },
        ],
      }),
    );
    const client = makeClient(server, token, { storage });
    const { states } = record(client);
    await until(client, (state) => state.balance === 500 && !state.stale);
    expect(states.find((state) => state.stale)).toMatchObject({
      balance: 500,
      available: 500,
      held: 0,
      expiring: [{ amount: 50, expiresAt: future, sources: ["PERIOD"] }],
      nextExpiry: { amount: 50, expiresAt: future },
    });
    expect(client.getSnapshot()).toMatchObject({ available: 500, expiring: [], nextExpiry: null });
  });

  it("never shows another user's stored balance", async () => {
    const alice = await server.fundUser(500);
    const bob = await server.fundUser(7);
    const storage = memoryStorage();
    await makeClient(server, alice.token, { storage }).getBalance();
    const client = makeClient(server, bob.token, { storage });
    const { states } = record(client);
    await until(client, (state) => state.balance === 7);
    expect(states.every((state) => state.balance === null || state.balance === 7)).toBe(true);
  });
});

describe(`awaitPurchaseCredit on ${driverName}`, () => {
  it("resolves with the purchase's entry when the webhook's credit arrives live", async () => {
    const { userId, token } = await server.fundUser(10);
    const client = makeClient(server, token);
    record(client);
    await until(client, (state) => state.live);
    const credit = client.awaitPurchaseCredit({ timeoutMs: 30_000, productId: "token_pack_medium" });
    await sleep(300);
    await server.purchase(userId, "token_pack_small");
    const storeTransactionId = await server.purchase(userId, "token_pack_medium");
    const outcome = await credit;
    expect(outcome).toMatchObject({
      status: "credited",
      balance: 610,
      entry: { kind: "PURCHASE", amount: 500, metadata: { productId: "token_pack_medium" } },
    });
    expect(outcome.status === "credited" && outcome.entry.metadata?.transactionId).toBe(storeTransactionId);
  });

  it("finds a credit that arrived before the wait began, by the store transaction id", async () => {
    const { userId, token } = await server.fundUser(10);
    const client = makeClient(server, token);
    record(client);
    await until(client, (state) => state.live);
    const storeTransactionId = await server.purchase(userId);
    await until(client, (state) => state.balance === 110);
    const outcome = await client.awaitPurchaseCredit({ timeoutMs: 30_000, storeTransactionId });
    expect(outcome).toMatchObject({ status: "credited", balance: 110, entry: { amount: 100 } });
  });

  it("answers pending after the timeout, having read the balance once more", async () => {
    const { token } = await server.fundUser(10);
    const counted = countingFetch();
    const client = makeClient(server, token, { fetch: counted.fetch });
    const outcome = await client.awaitPurchaseCredit({ timeoutMs: 1500 });
    expect(outcome).toEqual({ status: "pending", balance: 10 });
    expect(counted.operations).toEqual(["TokenBalance", "TokenBalanceWithEntries"]);
  });

  it("on timeout, the re-read finds a credit whose live event was lost", async () => {
    const { userId, token } = await server.fundUser(10);
    const tap = tapWebSocket({ drop: (message) => kindOf(message) === "PURCHASE" });
    const client = makeClient(server, token, { WebSocket: tap.WebSocket });
    record(client);
    // The subscription's first event (the balance now) is in before the credit, so the credit can
    // only reach the client as the event the tap withholds.
    await expect.poll(() => tap.delivered.some((message) => versionOf(message) === 1)).toBe(true);
    await until(client, (state) => state.version === 1);
    const credit = client.awaitPurchaseCredit({ timeoutMs: 3000 });
    await server.purchase(userId);
    await expect.poll(() => tap.dropped.length).toBe(1);
    expect(client.getSnapshot().balance).toBe(10);
    expect(await credit).toMatchObject({
      status: "credited",
      balance: 110,
      entry: { kind: "PURCHASE", amount: 100 },
    });
    expect(client.getSnapshot()).toMatchObject({ balance: 110, version: 2 });
  });
});
