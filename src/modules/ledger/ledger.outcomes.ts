import type { Database } from "../../db/client.js";
import { BalanceLimitError, IdempotencyConflictError, InsufficientTokensError } from "./ledger.errors.js";
import { getBalance, type LedgerEntry } from "./ledger.queries.js";
import type { LedgerService } from "./ledger.service.js";
import type { GrantInput, SpendInput } from "./ledger.validation.js";

export type SpendErrorCode = "INSUFFICIENT_TOKENS" | "IDEMPOTENCY_KEY_REUSED" | "RATE_LIMITED";
export type GrantErrorCode = "BALANCE_LIMIT_EXCEEDED" | "IDEMPOTENCY_KEY_REUSED";

/**
 * The answer to a spend as both GraphQL and REST give it: business refusals are data, not errors.
 * A replay is built from the stored entry, so it is identical to the first answer.
 */
export interface Outcome<Code extends string> {
  readonly success: boolean;
  readonly newBalance: number;
  readonly message: string;
  readonly entry: LedgerEntry | null;
  readonly errorCode: Code | null;
  readonly replayed: boolean;
}

export async function spendOutcome(
  deps: { db: Database; ledger: LedgerService },
  userId: string,
  input: SpendInput,
): Promise<Outcome<SpendErrorCode>> {
  try {
    const { entry, replayed } = await deps.ledger.spend(userId, input);
    return {
      success: true,
      newBalance: entry.balanceAfter,
      message: `Spent ${-entry.amount} tokens. New balance: ${entry.balanceAfter}`,
      entry,
      errorCode: null,
      replayed,
    };
  } catch (error) {
    if (error instanceof InsufficientTokensError) {
      return refusal(
        error.available,
        `Not enough tokens: ${error.required} required, ${error.available} available`,
        "INSUFFICIENT_TOKENS",
      );
    }
    if (error instanceof IdempotencyConflictError) {
      const { balance } = await getBalance(deps.db, userId);
      return refusal(
        balance,
        "This idempotency key was already used for a different spend",
        "IDEMPOTENCY_KEY_REUSED",
      );
    }
    throw error;
  }
}

export async function grantOutcome(
  deps: { db: Database; ledger: LedgerService },
  input: GrantInput & { grantedBy: string },
): Promise<Outcome<GrantErrorCode>> {
  try {
    const { entry, replayed } = await deps.ledger.grant(input);
    return {
      success: true,
      newBalance: entry.balanceAfter,
      message: `Granted ${entry.amount} tokens. New balance: ${entry.balanceAfter}`,
      entry,
      errorCode: null,
      replayed,
    };
  } catch (error) {
    if (error instanceof BalanceLimitError || error instanceof IdempotencyConflictError) {
      const { balance } = await getBalance(deps.db, input.userId);
      return error instanceof BalanceLimitError
        ? refusal(balance, `A balance cannot exceed ${error.limit} tokens`, "BALANCE_LIMIT_EXCEEDED")
        : refusal(
            balance,
            "This idempotency key was already used for a different grant",
            "IDEMPOTENCY_KEY_REUSED",
          );
    }
    throw error;
  }
}

export function refusal<Code extends string>(
  newBalance: number,
  message: string,
  errorCode: Code,
): Outcome<Code> {
  return { success: false, newBalance, message, entry: null, errorCode, replayed: false };
}
