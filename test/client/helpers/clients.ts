import { afterEach } from "vitest";
import WebSocket from "ws";
import {
  type BalanceSnapshot,
  createTokenClient,
  type FetchLike,
  type TokenClient,
  type TokenClientOptions,
} from "../../../src/client/index.js";
import type { LedgerServer } from "./ledger-server.js";

const made: TokenClient[] = [];

/** Disposes every client a test made, so no socket outlives its test. */
export function disposeClientsAfterEach(): void {
  afterEach(async () => {
    await Promise.all(made.splice(0).map((client) => client.dispose()));
  });
}

/** A client of the test server for one token, over `ws`, with any option overridden. */
export function makeClient(
  server: LedgerServer,
  token: string,
  options: Partial<TokenClientOptions> = {},
): TokenClient {
  const client = createTokenClient({
    url: server.graphqlUrl,
    getToken: () => token,
    WebSocket,
    ...options,
  });
  made.push(client);
  return client;
}

/**
 * Listens to a client's store (which opens its live connection, as a mounted hook would) and keeps
 * every snapshot it publishes.
 */
export function record(client: TokenClient): { states: BalanceSnapshot[]; stop(): void } {
  const states: BalanceSnapshot[] = [client.getSnapshot()];
  const stop = client.subscribe(() => states.push(client.getSnapshot()));
  return { states, stop };
}

/** Resolves with the first snapshot that passes `test`, or fails after `timeoutMs`. */
export function until(
  client: TokenClient,
  test: (snapshot: BalanceSnapshot) => boolean,
  timeoutMs = 20_000,
): Promise<BalanceSnapshot> {
  return new Promise((resolve, reject) => {
    let stop = () => {};
    const timer = setTimeout(() => {
      stop();
      reject(
        new Error(`no such snapshot within ${timeoutMs} ms; last: ${JSON.stringify(client.getSnapshot())}`),
      );
    }, timeoutMs);
    const check = () => {
      const snapshot = client.getSnapshot();
      if (!test(snapshot)) return;
      clearTimeout(timer);
      stop();
      resolve(snapshot);
    };
    stop = client.subscribe(check);
    check();
  });
}

/** The GraphQL operation names a fetch wrapper saw, in order, beside the real fetch. */
export function countingFetch(): { fetch: FetchLike; operations: string[] } {
  const operations: string[] = [];
  return {
    operations,
    fetch: (url, init) => {
      operations.push(operationName(init.body));
      return fetch(url, init);
    },
  };
}

export function operationName(body: string): string {
  return /^\s*(?:query|mutation)\s+(\w+)/.exec((JSON.parse(body) as { query: string }).query)?.[1] ?? "?";
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
