import { UNIQUE_VIOLATION, violates } from "../../db/errors.js";

/**
 * The ledger answers its refusals as values (ledger.types.ts). This one is still an error for the
 * purchases module, which throws it inside a webhook's transaction to roll the whole delivery back
 * when the ledger answered `balance_limit`, and records the delivery as failed.
 */
export class BalanceLimitError extends Error {
  override readonly name = "BalanceLimitError";
  constructor(
    readonly limit: number,
    readonly requested: number,
  ) {
    super(`A balance cannot exceed ${limit} tokens`);
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
