import { afterEach, describe, expect, it } from "vitest";
import type { LedgerEntry } from "../../src/client/index.js";
import { driverName } from "../helpers/database.js";
import {
  countingFetch,
  disposeClientsAfterEach,
  makeClient,
  operationName,
  record,
  sleep,
  until,
} from "./helpers/clients.js";
import { useLedgerServer } from "./helpers/ledger-server.js";
import { servePage } from "./helpers/page-server.js";
import { tapWebSocket, versionOf } from "./helpers/sockets.js";

const server = useLedgerServer();
disposeClientsAfterEach();
const opened: { close(): Promise<void> }[] = [];
const closeAfter = (thing: { close(): Promise<void> }) => opened.push(thing);
afterEach(async () => {
  await Promise.all(opened.splice(0).map((thing) => thing.close()));
});

/** Seconds since the epoch, for a token that expires at a chosen moment. */
const inSeconds = (seconds: number) => Math.floor(Date.now() / 1000) + seconds;

describe(`@token-ledger/client when things go wrong, on ${driverName}`, () => {
  it("a spend whose answer is lost is sent again with the same key and spends once", async () => {
    const { token } = await server.fundUser(500);
    const sent: string[] = [];
    let lost = 0;
    const client = makeClient(server, token, {
      fetch: async (url, init) => {
        const response = await fetch(url, init);
        if (operationName(init.body) !== "SpendTokens") return response;
        sent.push(init.body);
        // The server has committed the spend; the answer never reaches the app.
        if (lost++ === 0) throw new TypeError("Network request failed");
        return response;
      },
    });
    const response = await client.spendTokens({ amount: 10, description: "Used hint in challenge" });
    expect(response).toMatchObject({ success: true, newBalance: 490 });
    expect(sent).toHaveLength(2);
    const keys = sent.map(
      (body) =>
        (JSON.parse(body) as { variables: { input: { idempotencyKey: string } } }).variables.input
          .idempotencyKey,
    );
    expect(keys[0]).toBe(keys[1]);
    expect(keys[0]).toBe(response.idempotencyKey);
    const { entries } = await client.transactions();
    expect(entries.filter((entry) => entry.kind === "SPEND")).toHaveLength(1);
    expect(await client.getBalance()).toMatchObject({ balance: 490 });
  });

  it("a spend that never gets an answer is rolled back and reported with its key, safe to send again", async () => {
    const { token } = await server.fundUser(50);
    const client = makeClient(server, token, {
      fetch: async (url, init) => {
        if (operationName(init.body) === "SpendTokens") throw new TypeError("Network request failed");
        return fetch(url, init);
      },
    });
    await until(client, (state) => state.balance === 50);
    const response = await client.spendTokens({
      amount: 10,
      description: "offline",
      idempotencyKey: "offline-1",
    });
    expect(response).toMatchObject({
      success: false,
      errorCode: "NETWORK_ERROR",
      idempotencyKey: "offline-1",
    });
    expect(client.getSnapshot()).toMatchObject({ balance: 50, pending: 0 });
  });

  it("concurrent requests with an expired token share one refresh, then succeed", async () => {
    const { userId } = await server.fundUser(70);
    let token = await server.token(userId, inSeconds(-60));
    let refreshes = 0;
    const client = makeClient(server, "", {
      getToken: () => token,
      refreshToken: async () => {
        refreshes += 1;
        await sleep(200);
        token = await server.token(userId);
      },
    });
    const results = await Promise.all([client.getBalance(), client.transactions(), client.getBalance()]);
    expect(results[0]).toMatchObject({ balance: 70 });
    expect(results[2]).toMatchObject({ balance: 70 });
    expect(refreshes).toBe(1);
  });

  it("an expired token over HTTP without a way to refresh is an UNAUTHENTICATED error", async () => {
    const { userId } = await server.fundUser(1);
    const client = makeClient(server, await server.token(userId, inSeconds(-60)));
    await expect(client.getBalance()).rejects.toMatchObject({ code: "UNAUTHENTICATED" });
    expect(client.getSnapshot().error?.code).toBe("UNAUTHENTICATED");
  });

  it("token expiry on the socket: refresh, resubscribe, and nothing that happened meanwhile is lost", async () => {
    const { userId } = await server.fundUser(100);
    let token = await server.token(userId, inSeconds(6));
    const tap = tapWebSocket();
    let refreshes = 0;
    const client = makeClient(server, "", {
      WebSocket: tap.WebSocket,
      getToken: () => token,
      refreshToken: async () => {
        refreshes += 1;
        token = await server.token(userId);
        return token;
      },
    });
    record(client);
    await until(client, (state) => state.balance === 100 && state.live);
    // Far beyond the test's wait: the credit must come from the resubscription, not from the timeout.
    const credit = client.awaitPurchaseCredit({ timeoutMs: 120_000 });
    const firstToken = tap.authorizations[0];
    await expect.poll(() => tap.closeCodes, { timeout: 15_000, interval: 20 }).toContain(4403);
    // The socket is down until the client reconnects: credit the user in that window.
    expect(client.getSnapshot().live).toBe(false);
    const storeTransactionId = await server.purchase(userId);
    const outcome = await Promise.race([credit, sleep(20_000).then(() => "still waiting")]);
    expect(outcome).toMatchObject({ status: "credited", entry: { kind: "PURCHASE", amount: 100 } });
    expect((outcome as { entry: LedgerEntry }).entry.metadata?.transactionId).toBe(storeTransactionId);
    const state = await until(client, (snapshot) => snapshot.live && snapshot.balance === 200);
    expect(state).toMatchObject({ version: 2, error: null });
    expect(refreshes).toBe(1);
    expect(tap.authorizations).toEqual([firstToken, `Bearer ${token}`]);
    // Live again: the next change arrives as an event.
    await server.purchase(userId);
    await until(client, (snapshot) => snapshot.balance === 300 && snapshot.version === 3);
  });

  it("a forged token is fatal on the socket (4401): no reconnect loop, the error is shown", async () => {
    const tap = tapWebSocket();
    const forged = makeClient(server, `${(await server.token("someone")).slice(0, -4)}AAAA`, {
      WebSocket: tap.WebSocket,
    });
    record(forged);
    const state = await until(
      forged,
      (snapshot) => snapshot.error?.code === "UNAUTHENTICATED" && !snapshot.live,
    );
    expect(state.balance).toBeNull();
    await sleep(1500);
    expect(tap.opened()).toBe(1);
    expect(tap.closeCodes).toEqual([4401]);
  });

  it("a missed event (a version gap) makes the client read the balance again", async () => {
    const { token } = await server.fundUser(100);
    const tap = tapWebSocket({ drop: (message) => versionOf(message) === 2 });
    const counted = countingFetch();
    const client = makeClient(server, token, { WebSocket: tap.WebSocket, fetch: counted.fetch });
    record(client);
    await until(client, (state) => state.balance === 100);
    await expect.poll(() => tap.delivered.some((message) => versionOf(message) === 1)).toBe(true);
    const otherDevice = makeClient(server, token);
    expect((await otherDevice.spendTokens({ amount: 10, description: "elsewhere" })).success).toBe(true);
    await expect.poll(() => tap.dropped.length, { interval: 20 }).toBe(1);
    expect(client.getSnapshot()).toMatchObject({ balance: 100, version: 1 });
    expect(counted.operations).toEqual(["TokenBalance"]);
    expect((await otherDevice.spendTokens({ amount: 5, description: "elsewhere" })).success).toBe(true);
    await until(client, (state) => state.balance === 85 && state.version === 3);
    await expect.poll(() => counted.operations, { interval: 20 }).toEqual(["TokenBalance", "TokenBalance"]);
  });

  it("a server restart: the socket reconnects by itself and shows the current balance", async () => {
    const { userId, token } = await server.fundUser(100);
    const tap = tapWebSocket();
    const lines: string[] = [];
    const client = makeClient(server, token, { WebSocket: tap.WebSocket, onLog: (line) => lines.push(line) });
    const { states } = record(client);
    await until(client, (state) => state.balance === 100 && state.live);
    await server.restart();
    // Change the balance before the client is back: only a fresh reading can show it.
    await server.purchase(userId);
    const state = await until(client, (snapshot) => snapshot.live && snapshot.balance === 200, 60_000);
    expect(state).toMatchObject({ version: 2, error: null });
    expect(tap.closeCodes[0]).toBe(1001);
    expect(tap.opened()).toBeGreaterThan(1);
    expect(states.some((snapshot) => !snapshot.live && snapshot.balance === 100)).toBe(true);
    // The log says when the socket dropped, with its close code and reason, and when it was back.
    const socketLines = lines.filter((line) => line.startsWith("Live updates"));
    expect(socketLines[0]).toBe("Live updates connected");
    expect(socketLines[1]).toMatch(/^Live updates dropped \(close 1001: \S.*\)$/);
    expect(socketLines.at(-1)).toMatch(/^Live updates connected again after \d+\.\d s$/);
    await server.purchase(userId);
    await until(client, (snapshot) => snapshot.balance === 300);
  });

  it("refresh() reconnects a dropped socket at once instead of after its backoff (React Native's AppState)", async () => {
    const { token } = await server.fundUser(100);
    const path = await servePage({}, server.url);
    closeAfter(path);
    const lines: { at: number; line: string }[] = [];
    const client = makeClient(server, token, {
      url: `${path.url}graphql`,
      onLog: (line) => lines.push({ at: Date.now(), line }),
    });
    record(client);
    await until(client, (state) => state.balance === 100 && state.live);
    path.cutSockets();
    await until(client, (state) => !state.live);
    await expect.poll(() => path.refused(), { timeout: 20_000, interval: 20 }).toBeGreaterThanOrEqual(3);
    await sleep(300); // the third refusal's close reaches the client, which starts its next wait
    path.restoreSockets();
    const calledAt = Date.now();
    await client.refresh();
    await until(client, (state) => state.live);
    const liveAfterMs = Date.now() - calledAt;
    const pending = lines.filter((log) => /reconnect in [\d.]+ s/.test(log.line)).at(-1);
    const waitEndsAt = (pending?.at ?? 0) + Number(/in ([\d.]+) s/.exec(pending?.line ?? "")?.[1]) * 1000;
    console.log(`refresh(): live ${liveAfterMs} ms after the call; the pending wait: ${pending?.line}`);
    expect(waitEndsAt - calledAt).toBeGreaterThan(2000);
    expect(liveAfterMs).toBeLessThan((waitEndsAt - calledAt) / 2);
    expect(lines.map((log) => log.line)).toContain("Live updates reconnect now (refresh)");
  });
});
