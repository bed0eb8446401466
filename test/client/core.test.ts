import { describe, expect, it } from "vitest";
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
import { tapWebSocket } from "./helpers/sockets.js";

const server = useLedgerServer();
disposeClientsAfterEach();

describe(`@token-ledger/client against the server on ${driverName}`, () => {
  it("first load: loading, then the balance, logged with the seed app's lines", async () => {
    const { token } = await server.fundUser(500);
    const lines: string[] = [];
    const client = makeClient(server, token, { onLog: (line) => lines.push(line) });
    expect(client.getSnapshot()).toMatchObject({ balance: null, loading: true, stale: false });
    const { states } = record(client);
    const loaded = await until(client, (state) => state.balance === 500 && state.live);
    expect(loaded).toMatchObject({
      balance: 500,
      confirmedBalance: 500,
      version: 1,
      pending: 0,
      loading: false,
    });
    expect(loaded.error).toBeNull();
    expect(states.filter((state) => state.balance !== null).every((state) => state.balance === 500)).toBe(
      true,
    );
    // The socket's own lines ("Live updates connected") may come in between.
    expect(lines.filter((line) => !line.startsWith("Live updates")).slice(0, 2)).toEqual([
      "Fetching token balance from secure backend...",
      "Token balance fetched from backend: 500",
    ]);
    expect(await client.getBalance()).toMatchObject({ balance: 500, version: 1 });
  });

  it("a RevenueCat purchase shows up live, without another read", async () => {
    const { userId, token } = await server.fundUser(500);
    const counted = countingFetch();
    const client = makeClient(server, token, { fetch: counted.fetch });
    record(client);
    await until(client, (state) => state.balance === 500 && state.live);
    await server.purchase(userId);
    expect(await until(client, (state) => state.balance === 600)).toMatchObject({ version: 2, pending: 0 });
    expect(counted.operations).toEqual(["TokenBalance"]);
  });

  it("an optimistic spend shows at once as pending and clears on confirmation, subtracted once", async () => {
    const { token } = await server.fundUser(500);
    const lines: string[] = [];
    const client = makeClient(server, token, { onLog: (line) => lines.push(line) });
    const { states } = record(client);
    await until(client, (state) => state.balance === 500 && state.live);
    const spending = client.spendTokens({ amount: 10, description: "Used hint in challenge" });
    expect(client.getSnapshot()).toMatchObject({ balance: 490, confirmedBalance: 500, pending: 10 });
    const response = await spending;
    expect(response).toMatchObject({ success: true, newBalance: 490, errorCode: null });
    expect(response.transaction).toMatchObject({
      amount: -10,
      kind: "SPEND",
      idempotencyKey: response.idempotencyKey,
    });
    expect(response.idempotencyKey).toMatch(/\S{16,}/);
    await until(client, (state) => state.pending === 0 && state.version === 2);
    await sleep(300);
    expect(client.getSnapshot()).toMatchObject({
      balance: 490,
      confirmedBalance: 490,
      pending: 0,
      version: 2,
    });
    expect(Math.min(...states.flatMap((state) => (state.balance === null ? [] : [state.balance])))).toBe(490);
    expect(lines).toContain("Successfully spent 10 tokens. New balance: 490");
  });

  /** A client whose spend answers are held back per description, and whose socket may lag. */
  function slowedClient(token: string, answerDelayMs: Record<string, number>, socketDelayMs: number) {
    const committed: string[] = [];
    const client = makeClient(server, token, {
      WebSocket: tapWebSocket({ delayMs: socketDelayMs }).WebSocket,
      fetch: async (url, init) => {
        const response = await fetch(url, init);
        const description = /"description":"([^"]*)"/.exec(init.body)?.[1];
        if (description) {
          committed.push(description);
          await sleep(answerDelayMs[description] ?? 0);
        }
        return response;
      },
    });
    return { client, committed };
  }

  function shownBalances(states: { balance: number | null }[]): number[] {
    return states.flatMap((state) => (state.balance === null ? [] : [state.balance]));
  }

  it.each([
    ["its live event arrives before the answer", 600, 0],
    ["its answer arrives before the live event", 0, 600],
  ])("a spend is subtracted once when %s", async (_name, answerDelayMs, socketDelayMs) => {
    const { token } = await server.fundUser(100);
    const { client } = slowedClient(token, { only: answerDelayMs }, socketDelayMs);
    const { states } = record(client);
    await until(client, (state) => state.balance === 100 && state.live);
    expect((await client.spendTokens({ amount: 30, description: "only" })).success).toBe(true);
    await until(client, (state) => state.version === 2 && state.pending === 0);
    await sleep(socketDelayMs + 300);
    expect(client.getSnapshot()).toMatchObject({ balance: 70, confirmedBalance: 70, pending: 0, version: 2 });
    expect(Math.min(...shownBalances(states))).toBe(70);
  });

  it("a spend's answer that already includes another spend still in flight does not subtract that one twice", async () => {
    const { token } = await server.fundUser(100);
    // "first" commits first but its answer is held back; "second" commits after it, so the balance in
    // second's answer already includes first, while first is still pending. Events lag behind both.
    const { client, committed } = slowedClient(token, { first: 1000 }, 1500);
    const { states } = record(client);
    await until(client, (state) => state.balance === 100 && state.live);
    const first = client.spendTokens({ amount: 20, description: "first" });
    while (!committed.includes("first")) await sleep(10);
    const second = await client.spendTokens({ amount: 30, description: "second" });
    expect(second).toMatchObject({ success: true, newBalance: 50 });
    expect(client.getSnapshot()).toMatchObject({ balance: 50, pending: 50 });
    expect((await first).success).toBe(true);
    expect(client.getSnapshot()).toMatchObject({ balance: 50, confirmedBalance: 50, pending: 0, version: 3 });
    await sleep(1800);
    expect(client.getSnapshot()).toMatchObject({ balance: 50, pending: 0, version: 3 });
    expect(Math.min(...shownBalances(states))).toBe(50);
  });

  it("a refused spend (insufficient tokens) is rolled back", async () => {
    const { token } = await server.fundUser(5);
    const client = makeClient(server, token);
    const { states } = record(client);
    await until(client, (state) => state.balance === 5 && state.live);
    const spending = client.spendTokens({ amount: 10, description: "too much" });
    expect(client.getSnapshot()).toMatchObject({ balance: 0, pending: 10 });
    const response = await spending;
    expect(response).toMatchObject({
      success: false,
      newBalance: 5,
      errorCode: "INSUFFICIENT_TOKENS",
      transaction: null,
    });
    expect(client.getSnapshot()).toMatchObject({ balance: 5, pending: 0, version: 1 });
    expect(states.some((state) => state.pending === 10)).toBe(true);
    await sleep(300);
    expect(client.getSnapshot()).toMatchObject({ balance: 5, version: 1 });
  });

  it("pages transactions newest first, each entry once, ending on an empty cursor", async () => {
    const { userId, token } = await server.fundUser(100);
    const client = makeClient(server, token);
    for (const amount of [1, 2, 3, 4]) {
      expect((await client.spendTokens({ amount, description: `spend ${amount}` })).success).toBe(true);
    }
    await server.purchase(userId);
    const seen: { amount: number; kind: string }[] = [];
    let after: string | null = null;
    for (;;) {
      const page = await client.transactions({ first: 2, after });
      seen.push(...page.entries);
      if (!page.hasNextPage) break;
      after = page.endCursor;
    }
    expect(seen.map((entry) => [entry.kind, entry.amount])).toEqual([
      ["PURCHASE", 100],
      ["SPEND", -4],
      ["SPEND", -3],
      ["SPEND", -2],
      ["SPEND", -1],
      ["GRANT", 100],
    ]);
    const fresh = makeClient(server, await server.token(`${userId}-new`));
    expect(await fresh.transactions()).toEqual({ entries: [], endCursor: null, hasNextPage: false });
  });

  it("dispose closes the socket and refuses further work", async () => {
    const { token } = await server.fundUser(10);
    const tap = tapWebSocket();
    const client = makeClient(server, token, { WebSocket: tap.WebSocket });
    record(client);
    await until(client, (state) => state.live);
    await client.dispose();
    await sleep(200);
    expect(tap.closeCodes).toEqual([1000]);
    expect(await client.spendTokens({ amount: 1, description: "after dispose" })).toMatchObject({
      success: false,
      errorCode: "DISPOSED",
    });
  });
});
