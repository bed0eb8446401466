import { createElement, useLayoutEffect } from "react";
import { createRoot } from "react-dom/client";
import WebSocket from "ws";
import { createTokenClient } from "../../../src/client/index.js";
import { TokenLedgerProvider, useTokenBalance } from "../../../src/client/react.js";
import { percentile } from "../../../src/scripts/bench/stats.js";
import { installHappyDom } from "../helpers/dom.js";
import { startLedgerServer } from "../helpers/ledger-server.js";

/**
 * `npm run client:latency`: how long after a spend commits does a screen showing the balance
 * re-render with it? A server process (PGlite, or PostgreSQL with TEST_DATABASE_URL), a React root
 * on happy-dom whose component reads useTokenBalance, and another device spending over plain HTTP,
 * one spend at a time. Each sample is the time from the spender's HTTP response to the commit of
 * the render that shows the new balance (negative when the live event beat the response).
 */
const SPENDS = Number(process.env.LATENCY_SPENDS ?? 200);
const WARM_UP = 10;
const SPEND = `mutation S($input: SpendTokensInput!) { spendTokens(input: $input) { success newBalance } }`;

async function main(): Promise<void> {
  const closeDom = installHappyDom();
  const server = await startLedgerServer();
  const { token } = await server.fundUser(1_000_000);
  const client = createTokenClient({ url: server.graphqlUrl, getToken: () => token, WebSocket });
  let onCommit: (balance: number | null) => void = () => undefined;
  function Balance() {
    const { balance } = useTokenBalance();
    useLayoutEffect(() => {
      onCommit(balance);
    }, [balance]);
    return createElement("span", null, String(balance));
  }
  const container = document.createElement("div");
  const root = createRoot(container);
  const rendered = (expected: number) =>
    new Promise<number>((resolve) => {
      onCommit = (balance) => {
        if (balance === expected) resolve(performance.now());
      };
    });
  let shown = rendered(1_000_000);
  root.render(createElement(TokenLedgerProvider, { client }, createElement(Balance)));
  await shown;
  while (!client.getSnapshot().live) await new Promise((resolve) => setTimeout(resolve, 20));

  const samples: number[] = [];
  for (let i = 0; i < WARM_UP + SPENDS; i += 1) {
    shown = rendered(1_000_000 - i - 1);
    const response = await fetch(server.graphqlUrl, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({
        query: SPEND,
        variables: { input: { amount: 1, description: `latency ${i}` } },
      }),
    });
    const answered = performance.now();
    if (
      !((await response.json()) as { data?: { spendTokens: { success: boolean } } }).data?.spendTokens.success
    ) {
      throw new Error(`spend ${i} failed`);
    }
    const latency = (await shown) - answered;
    if (i >= WARM_UP) samples.push(latency);
  }
  root.unmount();
  await client.dispose();
  await server.close();
  await closeDom();
  report(samples);
}

function report(samples: number[]): void {
  const database = process.env.TEST_DATABASE_URL ? "PostgreSQL" : "PGlite";
  console.log(
    `spend committed (HTTP response) -> useTokenBalance re-render, ${samples.length} spends, ${database}`,
  );
  console.log(
    `  p50 ${percentile(samples, 50)} ms, p99 ${percentile(samples, 99)} ms, max ${percentile(samples, 100)} ms`,
  );
  const early = samples.filter((ms) => ms < 0).length;
  console.log(
    `  ${early} of ${samples.length} rendered before the spender had its response (negative samples)`,
  );
}

await main();
