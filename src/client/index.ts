export type { TokenLedgerErrorCode } from "./errors.js";
export { TokenLedgerError } from "./errors.js";
export { HoldError } from "./holds.js";
export { createTokenClient } from "./token-client.js";
export type { ShownTransaction, TransactionHistory, TransactionsSnapshot } from "./transactions.js";
export type {
  BalanceChangeInfo,
  BalanceChangeReason,
  BalanceReading,
  BalanceSnapshot,
  CaptureInput,
  CaptureResult,
  ExpiringTokens,
  FetchLike,
  Hold,
  HoldErrorCode,
  HoldJob,
  HoldOverage,
  HoldRefusalCode,
  HoldResult,
  HoldStatus,
  LedgerEntry,
  PurchaseCreditOptions,
  PurchaseCreditResult,
  ReserveInput,
  ReserveResult,
  SpendErrorCode,
  SpendInput,
  SpendResult,
  StorageLike,
  TokenClient,
  TokenClientOptions,
  TokenSource,
  TransactionKind,
  TransactionsPage,
  WithHoldOptions,
  WithHoldResult,
} from "./types.js";
