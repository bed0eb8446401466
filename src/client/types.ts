import type { TokenLedgerError } from "./errors.js";
import type {
  BalanceChangeReason,
  HoldOverage,
  HoldRefusalCode,
  HoldStatus,
  SpendRefusalCode,
  TokenSource,
  TransactionKind,
} from "./protocol.js";

/**
 * The part of `fetch` the client uses. The platform's global fetch fits, and so does any wrapper
 * (a test's, or an app's that adds tracing), without the client needing DOM or Node types.
 */
export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body: string; signal?: AbortSignal },
) => Promise<{ status: number; headers: { get(name: string): string | null }; json(): Promise<unknown> }>;

/** AsyncStorage's shape; `localStorage` fits too, since awaiting a plain value is harmless. */
export interface StorageLike {
  getItem(key: string): Promise<string | null> | string | null;
  setItem(key: string, value: string): Promise<void> | void;
}

export interface TokenClientOptions {
  /** The GraphQL endpoint, such as `https://api.example.com/graphql`; the WebSocket URL is derived. */
  url: string;
  /** Only when the WebSocket endpoint is elsewhere; by default `url` with http(s) turned into ws(s). */
  wsUrl?: string;
  /** The current JWT of the signed-in user (your auth SDK's cached token); null when signed out. */
  getToken: () => string | null | undefined | Promise<string | null | undefined>;
  /**
   * Forces a new token after the server called the current one expired. When it resolves with a
   * string, that is the new token; with anything else, `getToken` is asked again. Concurrent callers
   * share one call.
   */
  refreshToken?: () => Promise<unknown>;
  /** Defaults to the global fetch. */
  fetch?: FetchLike;
  /** A WebSocket constructor; defaults to the global one (pass the `ws` package on Node 20). */
  WebSocket?: unknown;
  /** Keeps the last balance so the next start shows it at once, marked stale, while it revalidates. */
  storage?: StorageLike;
  /** The storage key; the stored value also names its user, so another user never sees it. */
  storageKey?: string;
  /** Receives one line per notable step, such as `Token balance fetched from backend: 500`. */
  onLog?: (line: string) => void;
  /** How many entries each page of useTransactions() reads; 20 by default. */
  historyPageSize?: number;
  /** How long one HTTP attempt may take before it counts as a network failure; 15 s by default. */
  requestTimeoutMs?: number;
}

/** Tokens that stop being usable at one instant unless spent before (spends take them first). */
export interface ExpiringTokens {
  amount: number;
  /** ISO time: from then on they can no longer be spent. */
  expiresAt: string;
  /** Where they came from, usually one source such as PERIOD (a subscription period). */
  sources: TokenSource[];
}

/** A balance as the server reported it at one version. */
export interface BalanceReading {
  /** Never counts tokens past their expiry. */
  balance: number;
  /** Tokens set aside by holds; 0 until holds exist. */
  held: number;
  /** What a spend can use: balance less held. */
  available: number;
  /** Soonest first, one entry per expiry instant (at most 10); empty when nothing expires. */
  expiring: ExpiringTokens[];
  version: number;
  lastUpdated: string | null;
}

/** The last live change of the balance: why, by how much, at which version. */
export interface BalanceChangeInfo {
  reason: Exclude<BalanceChangeReason, "SNAPSHOT">;
  delta: number;
  version: number;
  /** ISO time of the change. */
  at: string;
}

export type {
  BalanceChangeReason,
  HoldOverage,
  HoldRefusalCode,
  HoldStatus,
  TokenSource,
  TransactionKind,
} from "./protocol.js";

/** One ledger entry; `metadata` of a purchase names its `productId` and store `transactionId`. */
export interface LedgerEntry {
  id: string;
  amount: number;
  balanceAfter: number;
  kind: TransactionKind;
  idempotencyKey: string | null;
  createdAt: string;
  description?: string | null;
  metadata?: Record<string, unknown> | null;
}

/** What the UI shows: one immutable object per change, so it can feed useSyncExternalStore. */
export interface BalanceSnapshot {
  /** What to show: the confirmed balance less the spends still in flight; null before any is known. */
  balance: number | null;
  /** The balance the server last confirmed. */
  confirmedBalance: number | null;
  /** What a spend can use: the confirmed available less the spends in flight; null before any is known. */
  available: number | null;
  /** Tokens set aside by holds (0 until holds exist). */
  held: number;
  /** Tokens that will expire unless spent, soonest first: "200 tokens expire on 1 Jan". */
  expiring: ExpiringTokens[];
  /** The first of `expiring`, or null when nothing expires. */
  nextExpiry: ExpiringTokens | null;
  /** The last change that arrived live (SPEND, PURCHASE, EXPIRE, ...); null until one does. */
  lastChange: BalanceChangeInfo | null;
  /** Tokens of spends sent but not yet confirmed or refused. */
  pending: number;
  version: number | null;
  lastUpdated: string | null;
  /** True while the balance shown comes from storage and has not been revalidated yet. */
  stale: boolean;
  /** True while there is no balance to show yet, unless the last attempt failed and none is under way. */
  loading: boolean;
  /** The last failure to read or to stay live; cleared by the next success. */
  error: TokenLedgerError | null;
  /** True while the live connection is open and acknowledged. */
  live: boolean;
}

export interface SpendInput {
  amount: number;
  description: string;
  metadata?: Record<string, unknown>;
  /** Generated when absent; a retry with the same key never spends twice. */
  idempotencyKey?: string;
}

/** The server's refusals, then the client's own failures (the spend's outcome is then unknown). */
export type SpendErrorCode = SpendRefusalCode | TokenLedgerError["code"];

export interface SpendResult {
  success: boolean;
  /** The balance after this call as the server reported it, or the last confirmed one on a failure. */
  newBalance: number;
  message: string;
  errorCode: SpendErrorCode | null;
  retryAfterSeconds: number | null;
  transaction: LedgerEntry | null;
  /** The key the spend went out with: spend again with it to retry without any risk of spending twice. */
  idempotencyKey: string;
}

export interface TransactionsPage {
  entries: LedgerEntry[];
  /** Pass as `after` for the next (older) page; null when the page is empty. */
  endCursor: string | null;
  hasNextPage: boolean;
}

export interface PurchaseCreditOptions {
  /** How long to wait for the webhook's credit before answering "pending"; 30 s by default. */
  timeoutMs?: number;
  /** The store's transaction id (`transaction.transactionIdentifier` from purchasePackage): an exact match. */
  storeTransactionId?: string;
  /** Only a credit for this product counts. */
  productId?: string;
  /** Credits that arrived live from this moment (epoch ms) count; by default the moment of the call. */
  since?: number;
}

/** "credited" once the purchase's ledger entry is seen; "pending" when it has not arrived in time. */
export type PurchaseCreditResult =
  | { status: "credited"; entry: LedgerEntry; balance: number | null }
  | { status: "pending"; balance: number | null };

export interface TokenClient {
  /** Reads the balance from the server (and updates the store). */
  getBalance(): Promise<BalanceReading>;
  spendTokens(input: SpendInput): Promise<SpendResult>;
  /** One page of entries, newest first. */
  transactions(options?: { first?: number; after?: string | null }): Promise<TransactionsPage>;
  /**
   * Calls `listener` with each committed entry as it arrives live (null when the subscription starts
   * again, so entries may have been missed), keeping the live connection open until unsubscribed.
   * useTransactions builds on it.
   */
  watchEntries(listener: (entry: LedgerEntry | null) => void): () => void;
  /** Where the client keeps what it shows at the next start, and whose it is; null without storage. */
  readonly storage: {
    storage: StorageLike;
    key: string;
    /** The signed-in user (the token's subject): stored values of anyone else are never shown. */
    owner(): Promise<string | null>;
  } | null;
  /** The `historyPageSize` option. */
  readonly historyPageSize: number;
  awaitPurchaseCredit(options?: PurchaseCreditOptions): Promise<PurchaseCreditResult>;
  /** Sets tokens aside for a job whose price is known only after it (a hold); see withHold. */
  reserve(input: ReserveInput): Promise<ReserveResult>;
  /** Spends what the job used of a hold (at most the hold unless overage is CAP); the rest goes back. */
  capture(holdId: string, input: CaptureInput): Promise<CaptureResult>;
  /** Gives a hold's tokens back whole. */
  release(holdId: string): Promise<HoldResult>;
  /**
   * Runs `job` under a hold of `amount`: reserves (with an idempotency key), runs the job, captures
   * what it reports having used, and releases the hold when the job throws (the error is rethrown).
   * A refused reserve throws a HoldRefusedError before the job runs. If the capture fails after the
   * job ran, it is tried again with the same amount; if it still fails, the hold is left to expire at
   * its TTL (its tokens go back) and a HoldRefusedError with the job's result is thrown.
   */
  withHold<T>(amount: number, job: HoldJob<T>, options?: WithHoldOptions): Promise<WithHoldResult<T>>;
  /** Listens to the store; the first listener opens the live connection, the last one closes it. */
  subscribe(listener: () => void): () => void;
  getSnapshot(): BalanceSnapshot;
  /** Reads the balance again and reopens the live connection if it had failed. */
  refresh(): Promise<void>;
  dispose(): Promise<void>;
}

/** A hold: tokens set aside for a job, then captured, released, or expired at its TTL. */
export interface Hold {
  id: string;
  amount: number;
  status: HoldStatus;
  /** What its capture spent; null unless CAPTURED. */
  captured: number | null;
  createdAt: string;
  /** ISO time: from then on it cannot be captured, and its tokens go back. */
  expiresAt: string;
  closedAt: string | null;
  description: string | null;
  metadata: Record<string, unknown> | null;
}

export interface ReserveInput {
  amount: number;
  /** 1 to 86,400; the server's default (600) when absent. */
  ttlSeconds?: number;
  description?: string;
  metadata?: Record<string, unknown>;
  /** Generated when absent; a retry with the same key returns the same hold, never a second one. */
  idempotencyKey?: string;
}

export interface CaptureInput {
  amount: number;
  /** REJECT (refuse above the hold, the server's default) or CAP (take what the free balance allows). */
  overage?: HoldOverage;
  description?: string;
  metadata?: Record<string, unknown>;
}

/** The server's refusals, then the client's own failures (the outcome is then unknown: retry). */
export type HoldErrorCode = HoldRefusalCode | TokenLedgerError["code"];

export interface HoldResult {
  success: boolean;
  message: string;
  errorCode: HoldErrorCode | null;
  /** The hold as it is now; null when there is none, or no answer came. */
  hold: Hold | null;
  /** True when the server repeated an earlier answer (the same key, or the same hold already done). */
  replayed: boolean;
  retryAfterSeconds: number | null;
}

export interface ReserveResult extends HoldResult {
  /** The key the reserve went out with: reserve again with it to retry without a second hold. */
  idempotencyKey: string;
}

export interface CaptureResult extends HoldResult {
  /** The capture's SPEND entry. */
  transaction: LedgerEntry | null;
  /** With overage CAP: what was asked beyond the hold that the free balance could not cover. */
  shortfall: number | null;
}

/** What a job under a hold gets; it reports what it used as `used` (whole tokens, 0 or more). */
export type HoldJob<T> = (hold: Hold) => Promise<{ used: number; result: T }>;

export interface WithHoldOptions extends Omit<ReserveInput, "amount"> {
  /** The capture's SPEND entry description; the reserve's description by default. */
  captureDescription?: string;
  overage?: HoldOverage;
}

export interface WithHoldResult<T> {
  result: T;
  hold: Hold;
  /** What the capture spent. */
  used: number;
  capture: CaptureResult;
}
