import type { Logger } from "pino";
import type { Database } from "../../db/client.js";
import type { Metrics } from "../../metrics.js";
import type { RateLimits } from "../limits/rate-limits.js";
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
  /** With RATE_LIMITED: how long to wait before trying again. */
  readonly retryAfterSeconds: number | null;
}

export interface OutcomeDeps {
  readonly db: Database;
  readonly ledger: LedgerService;
  readonly limits: RateLimits;
  readonly metrics: Metrics;
  /** The request's logger (its lines carry the request id). */
  readonly logger: Logger;
}

export async function spendOutcome(
  deps: OutcomeDeps,
  userId: string,
  input: SpendInput,
): Promise<Outcome<SpendErrorCode>> {
  const outcome = await decideSpend(deps, userId, input);
  const label = outcome.success
    ? outcome.replayed
      ? "replay"
      : "success"
    : outcome.errorCode === "INSUFFICIENT_TOKENS"
      ? "insufficient"
      : outcome.errorCode === "RATE_LIMITED"
        ? "rate_limited"
        : "invalid";
  deps.metrics.spends.inc({ outcome: label });
  return outcome;
}

async function decideSpend(
  deps: OutcomeDeps,
  userId: string,
  input: SpendInput,
): Promise<Outcome<SpendErrorCode>> {
  const limit = await deps.limits.spend(userId);
  if (!limit.allowed) {
    const { balance } = await getBalance(deps.db, userId);
    return {
      ...refusal(balance, `Too many spends: try again in ${limit.retryAfterSeconds} seconds`, "RATE_LIMITED"),
      retryAfterSeconds: limit.retryAfterSeconds,
    };
  }
  try {
    const { entry, replayed } = await deps.ledger.spend(userId, input, deps.logger);
    return {
      success: true,
      newBalance: entry.balanceAfter,
      message: `Spent ${-entry.amount} tokens. New balance: ${entry.balanceAfter}`,
      entry,
      errorCode: null,
      replayed,
      retryAfterSeconds: null,
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
  deps: Pick<OutcomeDeps, "db" | "ledger" | "logger">,
  input: GrantInput & { grantedBy: string },
): Promise<Outcome<GrantErrorCode>> {
  try {
    const { entry, replayed } = await deps.ledger.grant(input, deps.logger);
    return {
      success: true,
      newBalance: entry.balanceAfter,
      message: `Granted ${entry.amount} tokens. New balance: ${entry.balanceAfter}`,
      entry,
      errorCode: null,
      replayed,
      retryAfterSeconds: null,
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
  return {
    success: false,
    newBalance,
    message,
    entry: null,
    errorCode,
    replayed: false,
    retryAfterSeconds: null,
  };
}
