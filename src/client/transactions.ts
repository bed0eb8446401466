import { asLedgerError } from "./balance-sync.js";
import type { TokenLedgerError } from "./errors.js";
import type { LedgerEntry, TokenClient } from "./types.js";

/** One ledger entry with what a history screen shows for it. */
export interface ShownTransaction extends LedgerEntry {
  /** A short line for the row, such as "Purchase" or the spend's own description. */
  title: string;
  /** A second line (the product, the reason), or null. */
  detail: string | null;
  /** The amount with its sign, such as "+100" or "−30". */
  amountText: string;
}

export interface TransactionsSnapshot {
  /** Newest first; each entry at most once, whether it came in a page, live, or both. */
  entries: ShownTransaction[];
  /** True while a page is being read. */
  loading: boolean;
  error: TokenLedgerError | null;
  /** More (older) entries can be loaded with loadMore(). */
  hasMore: boolean;
  /** True while the entries shown are the stored ones from the last session. */
  stale: boolean;
}

export interface TransactionHistory {
  /** The first listener reads the first page and keeps the live subscription open. */
  subscribe(listener: () => void): () => void;
  getSnapshot(): TransactionsSnapshot;
  /** Reads the next (older) page; does nothing while one is being read or when there is none. */
  loadMore(): Promise<void>;
  /** Reads the first page again (pull to refresh); entries that arrived live stay. */
  refresh(): Promise<void>;
}

/** The words a history row shows for each kind of entry. */
export function describeTransaction(entry: LedgerEntry): ShownTransaction {
  const meta = entry.metadata ?? {};
  const product = typeof meta.productId === "string" ? meta.productId : null;
  const amountText = entry.amount > 0 ? `+${entry.amount}` : `\u2212${Math.abs(entry.amount)}`;
  const shown = (title: string, detail: string | null = null) => ({ ...entry, title, detail, amountText });
  switch (entry.kind) {
    case "PURCHASE":
      return shown("Purchase", product);
    case "SPEND":
      return shown(entry.description || "Spent");
    case "GRANT":
      return shown("Tokens from support", entry.description ?? null);
    case "REFUND":
      return shown("Refunded purchase", product);
    case "REFUND_REVERSAL":
      return shown("Refund reversed", product);
    case "LEGACY_IMPORT":
      return shown("Balance carried over", null);
    case "ADJUSTMENT":
      return shown("Balance correction", entry.description ?? null);
    case "TRANSFER":
      return shown(entry.amount < 0 ? "Tokens sent" : "Tokens received", entry.description ?? null);
    default:
      return shown(entry.description || "Balance change");
  }
}

const histories = new WeakMap<TokenClient, TransactionHistory>();

/**
 * The client's history (one per client, shared by every screen that shows it): pages read on demand,
 * new entries prepended as they arrive live, the first page kept in the client's storage and shown
 * (marked stale) at the next start while it is read again. Its own module, so an app that shows no
 * history does not ship it.
 */
export function historyOf(client: TokenClient): TransactionHistory {
  let history = histories.get(client);
  if (!history) {
    history = createTransactionHistory(client);
    histories.set(client, history);
  }
  return history;
}

function createTransactionHistory(client: TokenClient): TransactionHistory {
  const pageSize = client.historyPageSize;
  const stored = client.storage;
  const storageKey = `${stored?.key ?? ""}:transactions`;
  const listeners = new Set<() => void>();
  let entries: ShownTransaction[] = [];
  let endCursor: string | null = null;
  let snapshot: TransactionsSnapshot = { entries, loading: false, error: null, hasMore: false, stale: false };
  let started = false;
  let release: (() => void) | undefined;
  let reading: Promise<void> | undefined;
  /** Ids of entries that arrived live since the first page was last read. */
  let liveIds = new Set<string>();
  /** Snapshots (subscription starts) seen since the history started: each after the first may hide entries. */
  let resubscriptions = 0;

  const publish = (changes: Partial<TransactionsSnapshot>) => {
    snapshot = { ...snapshot, entries, ...changes };
    for (const listener of listeners) listener();
  };

  const store = () => {
    if (!stored) return;
    const first = entries.slice(0, pageSize);
    void stored
      .owner()
      .then((user) => user && stored.storage.setItem(storageKey, JSON.stringify({ user, entries: first })))
      .catch(() => undefined);
  };

  async function loadStored(): Promise<void> {
    const user = await stored?.owner().catch(() => null);
    if (!stored || !user) return;
    try {
      const saved = JSON.parse((await stored.storage.getItem(storageKey)) ?? "null") as {
        user?: string;
        entries?: LedgerEntry[];
      } | null;
      if (saved?.user !== user || !Array.isArray(saved.entries) || snapshot.entries.length > 0) return;
      entries = saved.entries.map(describeTransaction);
      publish({ stale: true });
    } catch {}
  }

  function read(after: string | null): Promise<void> {
    reading ??= (async () => {
      publish({ loading: true });
      try {
        const page = await client.transactions({ first: pageSize, after });
        if (after === null) {
          // The first page, with the entries that arrived live meanwhile and are not in it on top.
          const inPage = new Set(page.entries.map((entry) => entry.id));
          const kept = entries.filter((entry) => liveIds.has(entry.id) && !inPage.has(entry.id));
          entries = [...kept, ...page.entries.map(describeTransaction)];
          liveIds = new Set(kept.map((entry) => entry.id));
          store();
        } else {
          const known = new Set(entries.map((entry) => entry.id));
          entries = [...entries, ...page.entries.filter((e) => !known.has(e.id)).map(describeTransaction)];
        }
        endCursor = page.endCursor;
        publish({ loading: false, error: null, hasMore: page.hasNextPage, stale: false });
      } catch (error) {
        publish({ loading: false, error: asLedgerError(error) });
      } finally {
        reading = undefined;
      }
    })();
    return reading;
  }

  /**
   * A live change: its entry goes on top unless it is there already; null means the subscription
   * began again and entries may have been missed, so the first page is read again.
   */
  function applyLive(entry: LedgerEntry | null): void {
    if (!started) return;
    if (entry === null) {
      resubscriptions += 1;
      if (resubscriptions > 1) void (reading ? reading.then(() => read(null)) : read(null));
      return;
    }
    if (entries.some((known) => known.id === entry.id)) return;
    liveIds.add(entry.id);
    entries = [describeTransaction(entry), ...entries];
    store();
    publish({});
  }

  return {
    subscribe(listener: () => void) {
      listeners.add(listener);
      if (listeners.size === 1) release = client.watchEntries(applyLive);
      if (!started) {
        started = true;
        // Already live (the balance opened the subscription): its next snapshot is a new start.
        if (client.getSnapshot().live) resubscriptions = 1;
        void loadStored().then(() => read(null));
      }
      return () => {
        listeners.delete(listener);
        if (listeners.size === 0) {
          release?.();
          release = undefined;
        }
      };
    },
    getSnapshot: () => snapshot,
    async loadMore() {
      if (reading || !snapshot.hasMore || snapshot.stale) return;
      await read(endCursor);
    },
    refresh: () => (reading ? reading.then(() => read(null)) : read(null)),
  };
}
