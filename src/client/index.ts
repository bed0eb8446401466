export type { TokenLedgerErrorCode } from "./errors.js";
export { TokenLedgerError } from "./errors.js";
export { createTokenClient } from "./token-client.js";
export type { ShownTransaction, TransactionHistory, TransactionsSnapshot } from "./transactions.js";
export type {
  BalanceChangeInfo,
  BalanceChangeReason,
  BalanceReading,
  BalanceSnapshot,
  ExpiringTokens,
  FetchLike,
  LedgerEntry,
  PurchaseCreditOptions,
  PurchaseCreditResult,
  SpendErrorCode,
  SpendInput,
  SpendResult,
  StorageLike,
  TokenClient,
  TokenClientOptions,
  TokenSource,
  TransactionKind,
  TransactionsPage,
} from "./types.js";
