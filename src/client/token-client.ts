import { createBalanceCache } from "./balance-cache.js";
import { createBalanceStore } from "./balance-store.js";
import { TokenLedgerError } from "./errors.js";
import { createGraphqlHttp } from "./graphql-http.js";
import { type BalanceChange, createLiveBalance } from "./live-balance.js";
import {
  BALANCE_QUERY,
  BALANCE_WITH_ENTRIES_QUERY,
  SPEND_MUTATION,
  TRANSACTIONS_QUERY,
} from "./operations.js";
import { createPurchaseWatch } from "./purchase-watch.js";
import { createTokenSource } from "./token-source.js";
import type {
  BalanceReading,
  FetchLike,
  LedgerEntry,
  PurchaseCreditOptions,
  PurchaseCreditResult,
  SpendInput,
  SpendResult,
  TokenClient,
  TokenClientOptions,
} from "./types.js";

interface BalanceData {
  balance: BalanceReading;
  transactions?: { edges: { node: LedgerEntry }[] };
}

interface SpendPayload extends Omit<SpendResult, "idempotencyKey"> {
  balance: BalanceReading;
}

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
    url: options.url,
    fetch: options.fetch ?? (globalThis as unknown as { fetch: FetchLike }).fetch,
    tokens,
    timeoutMs: options.requestTimeoutMs ?? 15_000,
  });
  const storageKey = options.storageKey ?? "token-ledger:balance";
  const cache = createBalanceCache(options.storage, storageKey, () => tokens.get(), log);
  const store = createBalanceStore((reading) => cache.save(reading));
  const purchases = createPurchaseWatch();
  const live = createLiveBalance({
    url: options.wsUrl ?? webSocketUrl(options.url),
    WebSocket: options.WebSocket ?? (globalThis as { WebSocket?: unknown }).WebSocket,
    tokens,
    onChange,
    onStatus: (isLive, error) => store.setFlags(error ? { live: isLive, error } : { live: isLive }),
  });
  let disposed = false;
  let started: Promise<void> | undefined;
  let reading: Promise<BalanceReading> | undefined;
  let followUp: Promise<BalanceReading> | undefined;

  async function request<T>(query: string, variables?: Record<string, unknown>): Promise<T> {
    if (disposed) throw new TokenLedgerError("DISPOSED", "This token client was disposed");
    return http.request<T>(query, variables);
  }

  /** One read of the balance; with the newest entries when spends or a purchase are awaited. */
  async function readOnce(): Promise<BalanceReading> {
    const withEntries = store.hasPending() || purchases.waiting();
    log("Fetching token balance from secure backend...");
    store.setFlags({ loading: true });
    try {
      const data = await request<BalanceData>(withEntries ? BALANCE_WITH_ENTRIES_QUERY : BALANCE_QUERY);
      const entries = data.transactions?.edges.map((edge) => edge.node) ?? [];
      const settled = entries.flatMap((entry) => (entry.idempotencyKey ? [entry.idempotencyKey] : []));
      store.accept(readingOf(data.balance), settled);
      purchases.offer(entries, false);
      store.setFlags({ loading: false, error: null });
      log(`Token balance fetched from backend: ${data.balance.balance}`);
      return readingOf(data.balance);
    } catch (error) {
      store.setFlags({ loading: false, error: asLedgerError(error) });
      throw error;
    }
  }

  /**
   * Reads run one at a time. Whoever asks while one is out gets the next one, which starts after it
   * and so sees everything that happened before the ask; everyone asking meanwhile shares it.
   */
  function reread(): Promise<BalanceReading> {
    if (!reading) {
      reading = readOnce().finally(() => {
        reading = undefined;
      });
      return reading;
    }
    followUp ??= reading
      .catch(() => undefined)
      .then(() => {
        followUp = undefined;
        return reread();
      });
    return followUp;
  }

  function onChange(change: BalanceChange): void {
    const next = readingOf(change);
    const entry = change.transaction;
    const { reading: known, stale } = store.current();
    if (!entry) {
      // The first event of every (re)subscription: the balance now. When it moved since the last
      // reading, only a read with entries can tell whether it includes spends in flight, or a
      // purchase credited while the socket was down.
      const moved = !known || stale || change.version !== known.version;
      if (moved && (store.hasPending() || purchases.waiting())) void reread().catch(() => undefined);
      else store.accept(next);
      return;
    }
    purchases.offer([entry], true);
    const gap = known !== null && !stale && change.version > known.version + 1;
    if (gap) void reread().catch(() => undefined);
    if (!gap || !store.hasPending()) store.accept(next, entry.idempotencyKey ? [entry.idempotencyKey] : []);
  }

  async function spendTokens(input: SpendInput): Promise<SpendResult> {
    const key = input.idempotencyKey ?? newIdempotencyKey();
    if (Number.isInteger(input.amount) && input.amount > 0) store.addPending(key, input.amount);
    const { amount, description, metadata } = input;
    const variables = { input: { amount, description, metadata, idempotencyKey: key } };
    try {
      const { spendTokens: payload } = await request<{ spendTokens: SpendPayload }>(
        SPEND_MUTATION,
        variables,
      );
      store.answer(key, readingOf(payload.balance), payload.success);
      log(
        payload.success
          ? `Successfully spent ${input.amount} tokens. New balance: ${payload.newBalance}`
          : `Spend of ${input.amount} tokens refused (${payload.errorCode}): ${payload.message}`,
      );
      const { balance: _balance, ...result } = payload;
      return { ...result, idempotencyKey: key };
    } catch (caught) {
      store.answer(key, null, false);
      const error = asLedgerError(caught);
      log(`Spend of ${input.amount} tokens failed (${error.code}): ${error.message}`);
      return {
        success: false,
        newBalance: store.current().reading?.balance ?? 0,
        message: error.message,
        errorCode: error.code,
        retryAfterSeconds: error.retryAfterSeconds,
        transaction: null,
        idempotencyKey: key,
      };
    }
  }

  async function awaitPurchaseCredit(wait: PurchaseCreditOptions = {}): Promise<PurchaseCreditResult> {
    const release = live.retain();
    try {
      const { reading: known, stale } = store.current();
      const baseline = known && !stale ? known : await reread();
      const waiter = purchases.watch(wait, baseline.lastUpdated);
      const timer = setTimeout(() => {
        // Before answering "pending", look once more: the credit may have come while the socket was down.
        void reread()
          .catch(() => undefined)
          .then(() => waiter.cancel());
      }, wait.timeoutMs ?? 30_000);
      const entry = await waiter.found;
      clearTimeout(timer);
      const balance = store.getSnapshot().balance;
      return entry ? { status: "credited", entry, balance } : { status: "pending", balance };
    } finally {
      release();
    }
  }

  function start(): Promise<void> {
    started ??= (async () => {
      const cached = await cache.load();
      if (cached) store.showStale(cached);
      await reread();
    })().catch(() => {
      started = undefined;
    });
    return started;
  }

  return {
    getBalance: () => reread(),
    spendTokens,
    async transactions({ first = 20, after = null } = {}) {
      const { transactions } = await request<{ transactions: Connection }>(TRANSACTIONS_QUERY, {
        first,
        after,
      });
      const { hasNextPage, endCursor } = transactions.pageInfo;
      return { entries: transactions.edges.map((edge) => edge.node), endCursor, hasNextPage };
    },
    awaitPurchaseCredit,
    subscribe(listener) {
      const unlisten = store.subscribe(listener);
      const release = live.retain();
      void start();
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

function readingOf(value: BalanceReading): BalanceReading {
  return { balance: value.balance, version: value.version, lastUpdated: value.lastUpdated ?? null };
}

function asLedgerError(error: unknown): TokenLedgerError {
  if (error instanceof TokenLedgerError) return error;
  return new TokenLedgerError("UNEXPECTED", error instanceof Error ? error.message : String(error));
}

/** The HTTP URL with its scheme turned into ws(s); a relative URL is resolved against the page. */
function webSocketUrl(url: string): string {
  const page = (globalThis as { location?: { href: string } }).location?.href;
  const absolute = /^https?:\/\//.test(url) || !page ? url : new URL(url, page).href;
  return absolute.replace(/^http/, "ws");
}

/** A random key; Hermes without a crypto polyfill falls back to Math.random, unique enough per user. */
function newIdempotencyKey(): string {
  const crypto = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (crypto?.randomUUID) return crypto.randomUUID();
  const random = () => Math.random().toString(36).slice(2, 10);
  return `${Date.now().toString(36)}-${random()}-${random()}-${random()}`;
}
