import { UNIQUE_VIOLATION, violates } from "../../db/errors.js";

/** Refusals the ledger makes on purpose. Each carries the data a caller needs to explain it. */

export class InsufficientTokensError extends Error {
  override readonly name = "InsufficientTokensError";
  constructor(
    readonly required: number,
    readonly available: number,
  ) {
    super(`Insufficient tokens: ${required} required, ${available} available`);
  }
}

export class IdempotencyConflictError extends Error {
  override readonly name = "IdempotencyConflictError";
  constructor(
    readonly idempotencyKey: string,
    /** The balance, unchanged, when the statement answered it (for the refusal's answer). */
    readonly available?: number,
  ) {
    super("This idempotency key was already used for a different request");
  }
}

export class BalanceLimitError extends Error {
  override readonly name = "BalanceLimitError";
  constructor(
    readonly limit: number,
    readonly requested: number,
    /** The balance, unchanged, when the statement answered it (for the refusal's answer). */
    readonly available?: number,
  ) {
    super(`A balance cannot exceed ${limit} tokens`);
  }
}

/** The user spent more often than the spend limit allows; nothing was written. */
export class RateLimitedError extends Error {
  override readonly name = "RateLimitedError";
  constructor(
    readonly retryAfterSeconds: number,
    /** The balance, unchanged, for the refusal's answer. */
    readonly available: number,
  ) {
    super(`Too many spends: try again in ${retryAfterSeconds} seconds`);
  }
}

/**
 * Two changes with one external reference for different users can pass the ledger's check at the
 * same moment (each holds only its own user's lock); the loser fails on the unique index. Run it
 * again, whole, and it finds the winner's entry as a duplicate.
 */
export function isReferenceRace(error: unknown): boolean {
  return (
    violates(error, UNIQUE_VIOLATION, "token_transactions_kind_external_ref") ||
    // The same for two credits of one store transaction's lot (lot_ref) to different users.
    violates(error, UNIQUE_VIOLATION, "token_lots_source_ref")
  );
}
