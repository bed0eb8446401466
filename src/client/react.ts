import {
  createContext,
  createElement,
  type ReactNode,
  useContext,
  useMemo,
  useSyncExternalStore,
} from "react";
import type { TokenLedgerError } from "./errors.js";
import { historyOf, type TransactionsSnapshot } from "./transactions.js";
import type { BalanceChangeInfo, ExpiringTokens, SpendInput, SpendResult, TokenClient } from "./types.js";

const TokenClientContext = createContext<TokenClient | null>(null);

/**
 * Makes one client available to every hook below it, so all of them share one store and one
 * WebSocket. Create the client once per signed-in user (outside render) and pass it in.
 */
export function TokenLedgerProvider(props: { client: TokenClient; children?: ReactNode }) {
  return createElement(TokenClientContext.Provider, { value: props.client }, props.children);
}

/** The provider's client, for transactions() and awaitPurchaseCredit(). */
export function useTokenClient(): TokenClient {
  const client = useContext(TokenClientContext);
  if (!client) throw new Error("Token hooks need a <TokenLedgerProvider client={...}> above them");
  return client;
}

export interface TokenBalanceState {
  /** The balance to show (confirmed less spends in flight); null until one is known. */
  balance: number | null;
  loading: boolean;
  error: TokenLedgerError | null;
  /** Reads the balance again (and reopens a failed live connection); never rejects. */
  refresh: () => Promise<void>;
  version: number | null;
  /** Tokens of spends not yet confirmed. */
  pending: number;
  /** True while the balance shown is the stored one from the last session. */
  stale: boolean;
  /** True while live updates are connected. */
  live: boolean;
  /** What a spend can use now (balance less held tokens, less spends in flight); null until known. */
  available: number | null;
  /** Tokens set aside by holds (0 until holds exist). */
  held: number;
  /** Tokens that will expire unless spent, soonest first, one entry per instant. */
  expiring: ExpiringTokens[];
  /** The soonest of them, for a line such as "200 credits expire on 1 Jan"; null when none expire. */
  nextExpiry: ExpiringTokens | null;
  /** The last change that arrived live, with its reason (SPEND, PURCHASE, EXPIRE, ...); null until one does. */
  lastChange: BalanceChangeInfo | null;
}

/**
 * The balance, kept current by the live subscription, which stays open while any component using
 * this hook is mounted. Re-renders only when the balance or its status changes.
 */
export function useTokenBalance(): TokenBalanceState {
  const client = useTokenClient();
  const snapshot = useSyncExternalStore(client.subscribe, client.getSnapshot, client.getSnapshot);
  return useMemo(
    () => ({
      balance: snapshot.balance,
      loading: snapshot.loading,
      error: snapshot.error,
      refresh: client.refresh,
      version: snapshot.version,
      pending: snapshot.pending,
      stale: snapshot.stale,
      live: snapshot.live,
      available: snapshot.available,
      held: snapshot.held,
      expiring: snapshot.expiring,
      nextExpiry: snapshot.nextExpiry,
      lastChange: snapshot.lastChange,
    }),
    [snapshot, client],
  );
}

/** The spend function: it shows the spend at once as pending and resolves with the server's answer. */
export { describeTransaction } from "./transactions.js";

export function useSpendTokens(): (input: SpendInput) => Promise<SpendResult> {
  return useTokenClient().spendTokens;
}

export interface TransactionsState extends TransactionsSnapshot {
  /** Reads the next (older) page, for a list's onEndReached. */
  loadMore: () => Promise<void>;
  /** Reads the first page again, for pull to refresh. */
  refresh: () => Promise<void>;
}

/**
 * The signed-in user's history, newest first: the first page at once (the stored one from the last
 * session meanwhile, marked stale), older pages on demand, and new entries on top as they commit.
 */
export function useTransactions(): TransactionsState {
  const history = historyOf(useTokenClient());
  const snapshot = useSyncExternalStore(history.subscribe, history.getSnapshot, history.getSnapshot);
  return useMemo(
    () => ({ ...snapshot, loadMore: history.loadMore, refresh: history.refresh }),
    [snapshot, history],
  );
}
