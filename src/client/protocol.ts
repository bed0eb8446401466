// The wire protocol's constants, as the server defines them: the WebSocket close codes and the
// enums of schema.graphql. One module, so that the client's types are written once, and one
// contract test (test/client/contract.test.ts) compares them with the schema and the server.

/** graphql-ws close codes the server uses (src/graphql/websocket.ts). */
export const CloseCode = {
  /** A missing, malformed or forged token; not retried. */
  Unauthorized: 4401,
  /** The token expired; retried with a fresh token. */
  TokenExpired: 4403,
  /** The client address is blocked after too many failed authentications; not retried. */
  RateLimited: 4429,
  /** The identity provider's keys could not be fetched; retried with the same token after a pause. */
  AuthUnavailable: 4503,
} as const;

/**
 * schema.graphql's TransactionKind (the server's entry kinds): LEGACY_IMPORT is a balance carried
 * over from the app's old store, ADJUSTMENT an admin's signed correction (a debit or a credit),
 * TRANSFER one side of tokens an admin moved between two users, EXPIRE tokens of a lot that reached
 * its end unused.
 */
export const TRANSACTION_KINDS = [
  "PURCHASE",
  "SPEND",
  "GRANT",
  "REFUND",
  "REFUND_REVERSAL",
  "LEGACY_IMPORT",
  "ADJUSTMENT",
  "TRANSFER",
  "EXPIRE",
] as const;
export type TransactionKind = (typeof TRANSACTION_KINDS)[number];

/**
 * schema.graphql's BalanceChangeReason: why a live balance event happened. SNAPSHOT is the balance as
 * it is (the first event of a subscription); GRANT includes a legacy balance carried over;
 * ADJUSTMENT an operator's correction or transfer; REVERSAL a reversed refund; EXPIRE tokens that
 * reached their end unused; HOLD, RELEASE and HOLD_EXPIRED a hold set aside or gave back tokens (held
 * and available move, the balance does not, there is no transaction); CAPTURE a hold's spend.
 */
export const BALANCE_CHANGE_REASONS = [
  "SNAPSHOT",
  "PURCHASE",
  "SPEND",
  "GRANT",
  "ADJUSTMENT",
  "REFUND",
  "REVERSAL",
  "EXPIRE",
  "HOLD",
  "CAPTURE",
  "RELEASE",
  "HOLD_EXPIRED",
] as const;
export type BalanceChangeReason = (typeof BALANCE_CHANGE_REASONS)[number];

/** schema.graphql's TokenSource: where expiring tokens came from (PERIOD: a subscription period). */
export const TOKEN_SOURCES = ["PACK", "PERIOD", "TRIAL", "GRANT", "ROLLOVER", "RESTORE", "LEGACY"] as const;
export type TokenSource = (typeof TOKEN_SOURCES)[number];

/** schema.graphql's SpendErrorCode: why the server refused a spend. */
export const SPEND_REFUSAL_CODES = ["INSUFFICIENT_TOKENS", "IDEMPOTENCY_KEY_REUSED", "RATE_LIMITED"] as const;
export type SpendRefusalCode = (typeof SPEND_REFUSAL_CODES)[number];

/** schema.graphql's HoldStatus: ACTIVE, then one of CAPTURED, RELEASED, EXPIRED. */
export const HOLD_STATUSES = ["ACTIVE", "CAPTURED", "RELEASED", "EXPIRED"] as const;
export type HoldStatus = (typeof HOLD_STATUSES)[number];

/** schema.graphql's HoldOverage: what a capture of more than the hold does. */
export const HOLD_OVERAGES = ["REJECT", "CAP"] as const;
export type HoldOverage = (typeof HOLD_OVERAGES)[number];

/** schema.graphql's HoldErrorCode: why the server refused a reserve, a capture or a release. */
export const HOLD_REFUSAL_CODES = [
  "INSUFFICIENT_TOKENS",
  "TOO_MANY_HOLDS",
  "RATE_LIMITED",
  "IDEMPOTENCY_KEY_REUSED",
  "INVALID_TTL",
  "HOLD_NOT_FOUND",
  "HOLD_EXPIRED",
  "HOLD_RELEASED",
  "HOLD_ALREADY_CAPTURED",
  "AMOUNT_EXCEEDS_HOLD",
] as const;
export type HoldRefusalCode = (typeof HOLD_REFUSAL_CODES)[number];
