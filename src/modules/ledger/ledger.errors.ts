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
  constructor(readonly idempotencyKey: string) {
    super("This idempotency key was already used for a different request");
  }
}

export class BalanceLimitError extends Error {
  override readonly name = "BalanceLimitError";
  constructor(
    readonly limit: number,
    readonly requested: number,
  ) {
    super(`A balance cannot exceed ${limit} tokens`);
  }
}

/** A second entry of the same kind for the same outside reference (such as a store transaction). */
export class DuplicateReferenceError extends Error {
  override readonly name = "DuplicateReferenceError";
  constructor(readonly externalRef: string) {
    super(`An entry for ${externalRef} already exists`);
  }
}
