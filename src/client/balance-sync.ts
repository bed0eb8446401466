import type { BalanceStore } from "./balance-store.js";
import { TokenLedgerError } from "./errors.js";
import type { BalanceChange } from "./live-balance.js";
import { BALANCE_QUERY, BALANCE_WITH_ENTRIES_QUERY } from "./operations.js";
import type { PurchaseWatch } from "./purchase-watch.js";
import type { BalanceReading, LedgerEntry } from "./types.js";

export type Request = <T>(query: string, variables?: Record<string, unknown>) => Promise<T>;

interface SyncDeps {
  readonly request: Request;
  readonly store: BalanceStore;
  readonly purchases: PurchaseWatch;
  readonly log: (line: string) => void;
}

interface BalanceData {
  balance: BalanceReading;
  transactions?: { edges: { node: LedgerEntry }[] };
}

/**
 * Reads the balance into the store, with the newest entries beside it while spends or a purchase
 * are awaited (the entries tell which of them the balance includes). Reads run one at a time:
 * whoever asks while one is out gets the next one, which starts after it and so sees everything
 * that happened before the ask; everyone asking meanwhile shares it.
 */
export function createBalanceReader(deps: SyncDeps): () => Promise<BalanceReading> {
  const { store, purchases, log } = deps;
  let reading: Promise<BalanceReading> | undefined;
  let followUp: Promise<BalanceReading> | undefined;

  async function readOnce(): Promise<BalanceReading> {
    const withEntries = store.hasPending() || purchases.waiting();
    log("Fetching token balance from secure backend...");
    store.setFlags({ loading: true });
    try {
      const data = await deps.request<BalanceData>(withEntries ? BALANCE_WITH_ENTRIES_QUERY : BALANCE_QUERY);
      const entries = data.transactions?.edges.map((edge) => edge.node) ?? [];
      const settled = entries.flatMap((entry) => (entry.idempotencyKey ? [entry.idempotencyKey] : []));
      const balance = readingOf(data.balance);
      store.accept(balance, settled);
      purchases.offer(entries, false);
      store.setFlags({ loading: false, error: null });
      log(`Token balance fetched from backend: ${balance.balance}`);
      return balance;
    } catch (error) {
      store.setFlags({ loading: false, error: asLedgerError(error) });
      throw error;
    }
  }

  return function reread(): Promise<BalanceReading> {
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
  };
}

/**
 * One balanceChanged event into the store. Events apply in version order and an older one changes
 * nothing, but its entry still settles the spend it names. A jump in versions means events were
 * missed: the balance is read again, and while spends are in flight the jumped event waits for that
 * read, since a missed event may hide one of them.
 */
export function applyLiveChange(
  change: BalanceChange,
  deps: Pick<SyncDeps, "store" | "purchases"> & { reread: () => Promise<unknown> },
): void {
  const { store, purchases } = deps;
  const next = readingOf(change);
  const entry = change.transaction;
  const reread = () => void deps.reread().catch(() => undefined);
  const { reading: known, stale } = store.current();
  if (change.reason === "SNAPSHOT") {
    // The first event of every (re)subscription: the balance now. When it moved since the last
    // reading, only a read with entries can tell whether it includes spends in flight, or a
    // purchase credited while the socket was down.
    const moved = !known || stale || change.version !== known.version;
    if (moved && (store.hasPending() || purchases.waiting())) reread();
    else store.accept(next);
    return;
  }
  // A hold's reserve, release or expiry has no entry: held and available move, the balance does not.
  if (entry) purchases.offer([entry], true);
  // The change's reason shows in the same snapshot as the balance it brought.
  const info = {
    reason: change.reason,
    delta: change.delta,
    version: change.version,
    at: change.lastUpdated,
  };
  const gap = known !== null && !stale && change.version > known.version + 1;
  if (gap) reread();
  if (!gap || !store.hasPending())
    store.accept(next, entry?.idempotencyKey ? [entry.idempotencyKey] : [], info);
  else store.noteChange(info);
}

/**
 * A reading from any source: the server's, or storage written by an older client (no held or
 * expiring), whose expiring tokens already past are left out. Available is balance less held.
 */
export function readingOf(
  value: Partial<Omit<BalanceReading, "available">> & Pick<BalanceReading, "balance" | "version">,
): BalanceReading {
  const held = value.held ?? 0;
  const now = Date.now();
  return {
    balance: value.balance,
    held,
    available: value.balance - held,
    expiring: (value.expiring ?? []).filter((tokens) => Date.parse(tokens.expiresAt) > now),
    version: value.version,
    lastUpdated: value.lastUpdated ?? null,
  };
}

export function asLedgerError(error: unknown): TokenLedgerError {
  if (error instanceof TokenLedgerError) return error;
  return new TokenLedgerError("UNEXPECTED", error instanceof Error ? error.message : String(error));
}
