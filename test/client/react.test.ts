// The DOM first: Testing Library looks for it when it is imported.
import "./helpers/happy-dom.js";
import { cleanup, fireEvent, render, renderHook, screen, waitFor } from "@testing-library/react";
import { createElement, type ReactNode, StrictMode, useState } from "react";
import { afterEach, describe, expect, it } from "vitest";
import type { TokenClient } from "../../src/client/index.js";
import { TokenLedgerProvider, useSpendTokens, useTokenBalance } from "../../src/client/react.js";
import { driverName } from "../helpers/database.js";
import { disposeClientsAfterEach, makeClient, operationName } from "./helpers/clients.js";
import { useLedgerServer } from "./helpers/ledger-server.js";
import { tapWebSocket } from "./helpers/sockets.js";

const server = useLedgerServer();
afterEach(cleanup);
disposeClientsAfterEach();

function withProvider(client: TokenClient) {
  return ({ children }: { children: ReactNode }) =>
    createElement(StrictMode, null, createElement(TokenLedgerProvider, { client }, children));
}

/** A component written the way the seed app's screens use the hooks, left exactly so. */
function HintButton() {
  const { balance, loading, error, refresh } = useTokenBalance();
  const spendTokens = useSpendTokens();
  const [message, setMessage] = useState("");
  if (loading) return createElement("p", null, "Loading...");
  if (error) return createElement("button", { type: "button", onClick: refresh }, `Retry: ${error.message}`);
  const unlockHint = async () => {
    const response = await spendTokens({
      amount: 10,
      description: "Used hint in challenge",
      metadata: { challengeId: "challenge_123" },
    });
    if (response.success) {
      setMessage("Hint unlocked");
    } else {
      setMessage(response.message);
    }
  };
  return createElement(
    "div",
    null,
    createElement("p", null, `Tokens: ${balance}`),
    createElement("button", { type: "button", onClick: unlockHint }, "Use hint"),
    createElement("p", null, message),
  );
}

function BalanceBadge(props: { name: string }) {
  const { balance, live } = useTokenBalance();
  return createElement("span", null, `${props.name}: ${balance} ${live ? "live" : "offline"}`);
}

describe(`React hooks on ${driverName}`, () => {
  it("useTokenBalance: loading first, then the balance, version and status", async () => {
    const { token } = await server.fundUser(500);
    const client = makeClient(server, token);
    const { result } = renderHook(() => useTokenBalance(), { wrapper: withProvider(client) });
    expect(result.current).toMatchObject({ balance: null, loading: true, error: null });
    await waitFor(() => expect(result.current).toMatchObject({ balance: 500, loading: false, live: true }));
    expect(result.current).toMatchObject({ version: 1, pending: 0, stale: false, error: null });
    expect(typeof result.current.refresh).toBe("function");
  });

  it("the seed app's component: the spend shows at once, then is confirmed", async () => {
    const { token } = await server.fundUser(500);
    let release = () => {};
    const answerHeld = new Promise<void>((resolve) => {
      release = resolve;
    });
    const client = makeClient(server, token, {
      fetch: async (url, init) => {
        const response = await fetch(url, init);
        if (operationName(init.body) === "SpendTokens") await answerHeld;
        return response;
      },
    });
    render(createElement(HintButton), { wrapper: withProvider(client) });
    expect(screen.getByText("Loading...")).toBeTruthy();
    await screen.findByText("Tokens: 500", undefined, { timeout: 20_000 });
    fireEvent.click(screen.getByText("Use hint"));
    // The server has not answered yet: the hook already shows the spend.
    await screen.findByText("Tokens: 490");
    expect(screen.queryByText("Hint unlocked")).toBeNull();
    release();
    await screen.findByText("Hint unlocked");
    expect(screen.getByText("Tokens: 490")).toBeTruthy();
    const { entries } = await client.transactions({ first: 1 });
    expect(entries[0]).toMatchObject({ amount: -10, metadata: { challengeId: "challenge_123" } });
  });

  it("shows a refused spend's message and rolls the balance back", async () => {
    const { token } = await server.fundUser(5);
    const client = makeClient(server, token);
    render(createElement(HintButton), { wrapper: withProvider(client) });
    await screen.findByText("Tokens: 5", undefined, { timeout: 20_000 });
    fireEvent.click(screen.getByText("Use hint"));
    await screen.findByText(/Insufficient|not enough/i);
    expect(screen.getByText("Tokens: 5")).toBeTruthy();
  });

  it("several components share one client and one socket, and all follow a purchase", async () => {
    const { userId, token } = await server.fundUser(500);
    const tap = tapWebSocket();
    const client = makeClient(server, token, { WebSocket: tap.WebSocket });
    render(
      createElement(
        "div",
        null,
        createElement(BalanceBadge, { name: "header" }),
        createElement(BalanceBadge, { name: "shop" }),
      ),
      { wrapper: withProvider(client) },
    );
    await screen.findByText("header: 500 live", undefined, { timeout: 20_000 });
    await screen.findByText("shop: 500 live");
    await server.purchase(userId);
    await screen.findByText("header: 600 live");
    await screen.findByText("shop: 600 live");
    expect(tap.opened()).toBe(1);
  });

  it("useTokenBalance: available, held, what expires, and why the balance last changed", async () => {
    const { userId, token } = await server.fundUser(500);
    const client = makeClient(server, token);
    // The subscription's first event (the balance now) has arrived: what follows is live.
    const started = new Promise<void>((resolve) => {
      const stop = client.watchEntries((entry) => {
        if (entry === null) resolve();
        stop();
      });
    });
    const { result } = renderHook(() => useTokenBalance(), { wrapper: withProvider(client) });
    await started;
    await waitFor(() => expect(result.current).toMatchObject({ balance: 500, live: true }), {
      timeout: 20_000,
    });
    expect(result.current).toMatchObject({
      available: 500,
      held: 0,
      expiring: [],
      nextExpiry: null,
      lastChange: null,
    });
    await server.purchase(userId);
    await waitFor(() => expect(result.current).toMatchObject({ balance: 600, available: 600 }));
    expect(result.current.lastChange).toMatchObject({ reason: "PURCHASE", delta: 100, version: 2 });
  });

  it("the socket closes a little after the last component using it unmounts", async () => {
    const { token } = await server.fundUser(1);
    const tap = tapWebSocket();
    const client = makeClient(server, token, { WebSocket: tap.WebSocket });
    const view = render(createElement(BalanceBadge, { name: "only" }), { wrapper: withProvider(client) });
    await screen.findByText("only: 1 live", undefined, { timeout: 20_000 });
    view.unmount();
    await expect.poll(() => tap.closeCodes, { timeout: 15_000 }).toEqual([1000]);
    expect(client.getSnapshot().live).toBe(false);
  });
});
