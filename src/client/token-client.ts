import { createBalanceCache } from "./balance-cache.js";
import { createBalanceStore } from "./balance-store.js";
import { applyLiveChange, createBalanceReader } from "./balance-sync.js";
import { TokenLedgerError } from "./errors.js";
import { createGraphqlHttp } from "./graphql-http.js";
import { captureHold, releaseHold, reserveTokens, withHold } from "./holds.js";
import { createLiveBalance } from "./live-balance.js";
import { TRANSACTIONS_QUERY } from "./operations.js";
import { awaitPurchaseCredit } from "./purchase-credit.js";
import { createPurchaseWatch } from "./purchase-watch.js";
import { spendTokens } from "./spend.js";
import { createTokenSource } from "./token-source.js";
import type { FetchLike, LedgerEntry, TokenClient, TokenClientOptions } from "./types.js";

interface Connection {
  edges: { node: LedgerEntry }[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

/**
 * One client per signed-in user: HTTP for reads and spends, one shared live subscription, and the
 * store the UI reads. Nothing opens until the first listener subscribes or a method is called.
 */
export function createTokenClient(options: TokenClientOptions): TokenClient {
  const log = options.onLog ?? (() => undefined);
  const tokens = createTokenSource(options.getToken, options.refreshToken);
  const http = createGraphqlHttp({
    url: () => absoluteUrl(options.url),
    fetch: options.fetch ?? globalFetch,
    tokens,
    timeoutMs: options.requestTimeoutMs ?? 15_000,
  });
  let disposed = false;
  const request = <T>(query: string, variables?: Record<string, unknown>): Promise<T> =>
    disposed
      ? Promise.reject(new TokenLedgerError("DISPOSED", "This token client was disposed"))
      : http.request<T>(query, variables);
  const storageKey = options.storageKey ?? "token-ledger:balance";
  const cache = createBalanceCache(options.storage, storageKey, () => tokens.get(), log);
  const store = createBalanceStore((reading) => cache.save(reading));
  const purchases = createPurchaseWatch();
  const reread = createBalanceReader({ request, store, purchases, log });
  const live = createLiveBalance({
    url: () => absoluteUrl(options.wsUrl ?? options.url).replace(/^http/i, "ws"),
    // Without one, graphql-ws takes the global WebSocket when the socket is first opened.
    WebSocket: options.WebSocket,
    tokens,
    onChange: (change) => {
      applyLiveChange(change, { store, purchases, reread });
      for (const listener of entryListeners) listener(change.transaction);
    },
    onStatus: (isLive, error) => store.setFlags(error ? { live: isLive, error } : { live: isLive }),
    log,
  });
  const entryListeners = new Set<(entry: LedgerEntry | null) => void>();
  let starting: Promise<void> | undefined;
  // The first listener shows the stored balance (if any) and reads the fresh one; a failed start
  // is tried again by the next listener.
  const start = () => {
    if (starting) return;
    starting = (async () => {
      const cached = await cache.load();
      if (cached) store.showStale(cached);
      await reread();
    })().catch(() => {
      starting = undefined;
    });
  };

  const holds = {
    reserve: (input: Parameters<TokenClient["reserve"]>[0]) => reserveTokens({ request, store, log }, input),
    capture: (holdId: string, input: Parameters<TokenClient["capture"]>[1]) =>
      captureHold({ request, store, log }, holdId, input),
    release: (holdId: string) => releaseHold({ request, store, log }, holdId),
  };

  return {
    getBalance: reread,
    ...holds,
    withHold: (amount, job, withOptions) => withHold(holds, amount, job, withOptions),
    spendTokens: (input) => spendTokens({ request, store, log }, input),
    async transactions({ first = 20, after = null } = {}) {
      const { transactions } = await request<{ transactions: Connection }>(TRANSACTIONS_QUERY, {
        first,
        after,
      });
      const { hasNextPage, endCursor } = transactions.pageInfo;
      return { entries: transactions.edges.map((edge) => edge.node), endCursor, hasNextPage };
    },
    watchEntries(listener) {
      entryListeners.add(listener);
      const release = live.retain();
      return () => {
        entryListeners.delete(listener);
        release();
      };
    },
    storage: options.storage ? { storage: options.storage, key: storageKey, owner: cache.owner } : null,
    historyPageSize: options.historyPageSize ?? 20,
    awaitPurchaseCredit: (wait) => awaitPurchaseCredit({ live, store, purchases, reread }, wait),
    subscribe(listener) {
      const unlisten = store.subscribe(listener);
      const release = live.retain();
      start();
      return () => {
        unlisten();
        release();
      };
    },
    getSnapshot: store.getSnapshot,
    async refresh() {
      live.restart();
      await reread().catch(() => undefined);
    },
    async dispose() {
      disposed = true;
      purchases.close();
      await live.dispose();
    },
  };
}

/**
 * The platform's fetch, looked up when called and called on the global object: a browser's fetch
 * detached from `window` (or called on another object) throws "Illegal invocation", and a fetch
 * polyfilled after the client was made is still found.
 */
const globalFetch: FetchLike = (url, init) =>
  (globalThis as unknown as { fetch: FetchLike }).fetch(url, init);

/**
 * The URL as given, or a relative one resolved against the page's location, looked up when used.
 * Without a page (React Native, Node) it must be absolute: a relative one is a clear error.
 */
function absoluteUrl(url: string): string {
  if (/^\w+:/.test(url)) return url;
  const page = (globalThis as { location?: { href?: string } }).location?.href;
  if (!page) {
    throw new TokenLedgerError("UNEXPECTED", `The url "${url}" is relative and there is no page`);
  }
  return new URL(url, page).href;
}
