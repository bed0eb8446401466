import { createElement } from "react";
import { createRoot } from "react-dom/client";
import { createTokenClient } from "../../../src/client/index.js";
import { TokenLedgerProvider, useTokenBalance } from "../../../src/client/react.js";

/**
 * The page the browser test loads: the SDK and its React hook, bundled by esbuild, using the
 * browser's own fetch and WebSocket. The API's URL and the user's token come in the query string.
 */
const params = new URLSearchParams(location.search);
const client = createTokenClient({
  url: params.get("api") ?? "/graphql",
  getToken: () => params.get("token"),
});

function Balance() {
  const { balance, loading, error, live } = useTokenBalance();
  const text = loading ? "Loading..." : error ? `Error: ${error.message}` : `Tokens: ${balance}`;
  return createElement("p", { id: "balance", "data-live": String(live) }, text);
}

const root = document.getElementById("root");
if (root) createRoot(root).render(createElement(TokenLedgerProvider, { client }, createElement(Balance)));
