// The DOM first: Testing Library looks for it when it is imported.
import "./helpers/happy-dom.js";
import { act, cleanup, renderHook, waitFor } from "@testing-library/react";
import { createElement, type ReactNode } from "react";
import { afterEach, describe, expect, it } from "vitest";
import type { FetchLike, TokenClient } from "../../src/client/index.js";
import { TokenLedgerProvider, useTransactions } from "../../src/client/react.js";
import { historyOf } from "../../src/client/transactions.js";
import { driverName } from "../helpers/database.js";
import { disposeClientsAfterEach, makeClient, operationName, sleep } from "./helpers/clients.js";
import { useLedgerServer } from "./helpers/ledger-server.js";

const server = useLedgerServer();
afterEach(cleanup);
disposeClientsAfterEach();

const WAIT = { timeout: 20_000 };

function renderHistory(client: TokenClient) {
  const wrapper = ({ children }: { children: ReactNode }) =>
    createElement(TokenLedgerProvider, { client }, children);
  return renderHook(() => useTransactions(), { wrapper });
}

async function spend(token: string, amount: number, description: string): Promise<void> {
  const response = await fetch(server.graphqlUrl, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({
      query: "mutation S($input: SpendTokensInput!) { spendTokens(input: $input) { success } }",
      variables: { input: { amount, description } },
    }),
  });
  expect(await response.json()).toEqual({ data: { spendTokens: { success: true } } });
}

describe(`useTransactions against a real server, on ${driverName}`, () => {
  it("pages on demand, newest first, with kinds and descriptions ready to show", async () => {
    const { token } = await server.fundUser(100);
    for (const n of [1, 2, 3, 4]) await spend(token, n, `Hint ${n}`);
    const client = makeClient(server, token, { historyPageSize: 2 });
    const { result } = renderHistory(client);
    await waitFor(() => expect(result.current.entries).toHaveLength(2), WAIT);
    expect(result.current.entries.map((e) => e.title)).toEqual(["Hint 4", "Hint 3"]);
    expect(result.current.entries[0]).toMatchObject({ kind: "SPEND", amount: -4, amountText: "\u22124" });
    expect(result.current.hasMore).toBe(true);
    await act(() => result.current.loadMore());
    await act(() => result.current.loadMore());
    await waitFor(() => expect(result.current.hasMore).toBe(false), WAIT);
    const shown = result.current.entries.map((e) => `${e.title}|${e.detail}|${e.amountText}`);
    expect(shown).toEqual([
      "Hint 4|null|\u22124",
      "Hint 3|null|\u22123",
      "Hint 2|null|\u22122",
      "Hint 1|null|\u22121",
      "Tokens from support|setup|+100",
    ]);
  });

  it("prepends a purchase live, without reading a page", async () => {
    const { userId, token } = await server.fundUser(10);
    const pages: string[] = [];
    const counting: FetchLike = (url, init) => {
      pages.push(operationName(init.body));
      return fetch(url, init);
    };
    const client = makeClient(server, token, { fetch: counting });
    const { result } = renderHistory(client);
    await waitFor(() => expect(result.current.entries).toHaveLength(1), WAIT);
    // Let the live subscription start before the purchase commits.
    await waitFor(() => expect(client.getSnapshot().live).toBe(true), WAIT);
    const reads = pages.filter((name) => name === "TokenTransactions").length;
    await server.purchase(userId, "token_pack_small");
    await waitFor(() => expect(result.current.entries).toHaveLength(2), WAIT);
    expect(result.current.entries[0]).toMatchObject({
      kind: "PURCHASE",
      title: "Purchase",
      detail: "token_pack_small",
      amountText: "+100",
    });
    expect(pages.filter((name) => name === "TokenTransactions").length).toBe(reads);
  });

  it("shows an entry once when it arrives live and in the page being read", async () => {
    const { token } = await server.fundUser(50);
    // The first page is held back until a spend has committed and its live event has arrived, so the
    // page the server then reads holds that entry too.
    let spent = false;
    const client: TokenClient = makeClient(server, token, {
      fetch: async (url, init) => {
        if (operationName(init.body) === "TokenTransactions" && !spent) {
          spent = true;
          await waitFor(() => expect(client.getSnapshot().live).toBe(true), WAIT);
          await spend(token, 7, "Overlap");
          await waitFor(
            () => expect(historyOf(client).getSnapshot().entries[0]?.title).toBe("Overlap"),
            WAIT,
          );
        }
        return fetch(url, init);
      },
    });
    const { result } = renderHistory(client);
    await waitFor(() => expect(result.current.loading).toBe(false), WAIT);
    await waitFor(() => expect(result.current.entries.length).toBeGreaterThanOrEqual(2), WAIT);
    await sleep(300);
    expect(result.current.entries.map((e) => e.title)).toEqual(["Overlap", "Tokens from support"]);
    // A later page does not bring it back either.
    await act(() => result.current.refresh());
    expect(result.current.entries.map((e) => e.title)).toEqual(["Overlap", "Tokens from support"]);
  });

  it("loses no entry across a reconnect: the first page is read again when the subscription restarts", async () => {
    const { token } = await server.fundUser(20);
    const client = makeClient(server, token);
    const { result } = renderHistory(client);
    await waitFor(() => expect(result.current.entries).toHaveLength(1), WAIT);
    await waitFor(() => expect(client.getSnapshot().live).toBe(true), WAIT);
    await server.restart();
    // Committed at once after the restart: before or after the client is back, it must show up once.
    await spend(token, 4, "After restart");
    await waitFor(() => expect(result.current.entries.map((e) => e.title)).toContain("After restart"), WAIT);
    await waitFor(() => expect(client.getSnapshot().live).toBe(true), WAIT);
    await sleep(300);
    expect(result.current.entries.map((e) => e.title)).toEqual(["After restart", "Tokens from support"]);
  });

  it("shows the stored history of the same user at the next start, marked stale, never another user's", async () => {
    const { token } = await server.fundUser(30);
    const other = await server.fundUser(40);
    const memory = new Map<string, string>();
    const storage = {
      getItem: (key: string) => memory.get(key) ?? null,
      setItem: (key: string, value: string) => void memory.set(key, value),
    };
    const first = makeClient(server, token, { storage });
    const { result, unmount } = renderHistory(first);
    await waitFor(() => expect(result.current.entries).toHaveLength(1), WAIT);
    unmount();
    await first.dispose();

    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const slowFetch: FetchLike = async (url, init) => {
      if (operationName(init.body) === "TokenTransactions") await held;
      return fetch(url, init);
    };
    const again = renderHistory(makeClient(server, token, { storage, fetch: slowFetch }));
    await waitFor(() => expect(again.result.current.stale).toBe(true), WAIT);
    expect(again.result.current.entries[0]).toMatchObject({
      title: "Tokens from support",
      amountText: "+30",
    });
    const stranger = renderHistory(makeClient(server, other.token, { storage, fetch: slowFetch }));
    await sleep(200);
    expect(stranger.result.current.entries).toEqual([]);
    release();
    await waitFor(() => expect(again.result.current.stale).toBe(false), WAIT);
    await waitFor(() => expect(stranger.result.current.entries[0]?.amountText).toBe("+40"), WAIT);
  });
});
