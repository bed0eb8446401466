import { createTokenClient, type PurchaseCreditResult, type TransactionsPage } from "@token-ledger/client";
import { TokenLedgerProvider, useSpendTokens, useTokenBalance } from "@token-ledger/client/react";
import { createElement } from "react";
import { createRoot } from "react-dom/client";

/**
 * The page the browser test loads, written as an app would: it imports the installed package by its
 * name (the test bundles it with esbuild against the built package), calls the API on its own origin
 * (`/graphql`, so the WebSocket URL comes from the page's location) with the browser's own fetch and
 * WebSocket. The user's token comes in the query string; `window.ledger` lets the test drive it.
 */
const params = new URLSearchParams(location.search);
const logs: { at: number; line: string }[] = [];
const client = createTokenClient({
  url: "/graphql",
  getToken: () => params.get("token"),
  onLog: (line) => logs.push({ at: performance.now(), line }),
});

/** Resolves once the client is live (at once when it already is). */
function whenLive(): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (!client.getSnapshot().live) return;
      stop();
      resolve();
    };
    const stop = client.subscribe(check);
    check();
  });
}

const ledger = {
  logs,
  /** How many purchase waits have started: the test delivers the purchase only once one has. */
  waits: 0,
  /** A second client handed the page's fetch as apps often write it: detached from `window`. */
  balanceWithDetachedFetch: () =>
    createTokenClient({
      url: "/graphql",
      getToken: () => params.get("token"),
      fetch: window.fetch,
    }).getBalance(),
  spend: (amount: number) => client.spendTokens({ amount, description: "Used hint" }),
  history: (first: number, after: string | null): Promise<TransactionsPage> =>
    client.transactions({ first, after }),
  awaitPurchase(timeoutMs: number): Promise<PurchaseCreditResult> {
    const credit = client.awaitPurchaseCredit({ timeoutMs });
    ledger.waits += 1;
    return credit;
  },
  /** Fires `type` as the browser does on coming back, and measures the milliseconds until live. */
  async cameBack(
    type: "online" | "focus" | "visibilitychange",
  ): Promise<{ firedAt: number; liveAfterMs: number }> {
    const firedAt = performance.now();
    (type === "visibilitychange" ? document : window).dispatchEvent(new Event(type));
    await whenLive();
    return { firedAt, liveAfterMs: performance.now() - firedAt };
  },
};
declare global {
  interface Window {
    ledger: typeof ledger;
  }
}
window.ledger = ledger;

function Balance() {
  const { balance, loading, error, live } = useTokenBalance();
  const spendTokens = useSpendTokens();
  const text = loading ? "Loading..." : error ? `Error: ${error.message}` : `Tokens: ${balance}`;
  return createElement(
    "div",
    null,
    createElement("p", { id: "balance", "data-live": String(live) }, text),
    createElement(
      "button",
      { id: "spend", type: "button", onClick: () => void spendTokens({ amount: 5, description: "Button" }) },
      "Spend 5",
    ),
  );
}

const root = document.getElementById("root");
if (root) createRoot(root).render(createElement(TokenLedgerProvider, { client }, createElement(Balance)));
