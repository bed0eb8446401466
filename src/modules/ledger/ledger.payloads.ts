import type { Logger } from "pino";
import type { Metrics } from "../../metrics.js";
import { InvalidInputError, parseInput } from "../../validation.js";
import type { RateLimits } from "../limits/rate-limits.js";
import {
  BalanceLimitError,
  IdempotencyConflictError,
  InsufficientTokensError,
  RateLimitedError,
} from "./ledger.errors.js";
import type { LedgerEntry } from "./ledger.queries.js";
import type { LedgerService, WriteResult } from "./ledger.service.js";
import { spendInputSchema } from "./ledger.validation.js";

/**
 * The answers to a spend and to a grant, as GraphQL and REST both give them: business refusals are
 * data (success false, an error code, the unchanged balance), not errors. A replay is built from the
 * stored entry, so it is identical to the first answer.
 */

/** Why a spend was refused; feeds the TypeScript type, the GraphQL enum and the REST status map. */
export const SPEND_ERROR_CODES = ["INSUFFICIENT_TOKENS", "IDEMPOTENCY_KEY_REUSED", "RATE_LIMITED"] as const;
export type SpendErrorCode = (typeof SPEND_ERROR_CODES)[number];

/** Why a grant was refused. */
export const GRANT_ERROR_CODES = ["BALANCE_LIMIT_EXCEEDED", "IDEMPOTENCY_KEY_REUSED"] as const;
export type GrantErrorCode = (typeof GRANT_ERROR_CODES)[number];

export interface Payload<Code extends string> {
  /** Whose balance the call was about (the caller's for a spend, the granted user's for a grant). */
  readonly userId: string;
  readonly success: boolean;
  readonly newBalance: number;
  readonly message: string;
  readonly entry: LedgerEntry | null;
  readonly errorCode: Code | null;
  readonly replayed: boolean;
  /** With RATE_LIMITED: how long to wait before trying again. */
  readonly retryAfterSeconds: number | null;
}

export interface SpendDeps {
  readonly ledger: LedgerService;
  readonly limits: RateLimits;
  readonly metrics: Metrics;
  /** The request's logger (its lines carry the request id). */
  readonly logger: Logger;
}

/** Validates, rate-limits and spends; counts the outcome in `token_spend_total`. */
export async function spendPayload(
  deps: SpendDeps,
  userId: string,
  rawInput: unknown,
): Promise<Payload<SpendErrorCode>> {
  let payload: Payload<SpendErrorCode>;
  try {
    payload = await decideSpend(deps, userId, rawInput);
  } catch (error) {
    if (error instanceof InvalidInputError) deps.metrics.spends.inc({ outcome: "invalid" });
    throw error;
  }
  deps.metrics.spends.inc({ outcome: spendLabel(payload) });
  return payload;
}

function spendLabel(payload: Payload<SpendErrorCode>): string {
  if (payload.success) return payload.replayed ? "replay" : "success";
  if (payload.errorCode === "INSUFFICIENT_TOKENS") return "insufficient";
  return payload.errorCode === "RATE_LIMITED" ? "rate_limited" : "invalid";
}

async function decideSpend(
  deps: SpendDeps,
  userId: string,
  rawInput: unknown,
): Promise<Payload<SpendErrorCode>> {
  // Refused input is refused before it can use up the user's rate limit.
  const input = parseInput(spendInputSchema, rawInput);
  const limit = await deps.limits.spend(userId);
  if (!limit.allowed) {
    const { balance } = await deps.ledger.balanceOf(userId);
    return rateLimited(userId, balance, limit.retryAfterSeconds);
  }
  try {
    const rateLimit = "counter" in limit ? limit.counter : undefined;
    const result = await deps.ledger.spend(userId, input, { log: deps.logger, rateLimit });
    return accepted(result, `Spent ${-result.entry.amount} tokens`);
  } catch (error) {
    if (error instanceof RateLimitedError)
      return rateLimited(userId, error.available, error.retryAfterSeconds);
    if (error instanceof InsufficientTokensError) {
      const message = `Not enough tokens: ${error.required} required, ${error.available} available`;
      return refusal(userId, error.available, message, "INSUFFICIENT_TOKENS");
    }
    if (error instanceof IdempotencyConflictError) {
      const balance = error.available ?? (await deps.ledger.balanceOf(userId)).balance;
      const message = "This idempotency key was already used for a different spend";
      return refusal(userId, balance, message, "IDEMPOTENCY_KEY_REUSED");
    }
    throw error;
  }
}

function rateLimited(userId: string, balance: number, retryAfterSeconds: number): Payload<SpendErrorCode> {
  const message = `Too many spends: try again in ${retryAfterSeconds} seconds`;
  return { ...refusal(userId, balance, message, "RATE_LIMITED"), retryAfterSeconds };
}

/** Why an operator's grant, adjustment or transfer was refused. */
export const ADMIN_ERROR_CODES = [
  "INSUFFICIENT_TOKENS",
  "BALANCE_LIMIT_EXCEEDED",
  "IDEMPOTENCY_KEY_REUSED",
] as const;
export type AdminErrorCode = (typeof ADMIN_ERROR_CODES)[number];

type AdminDeps = Pick<SpendDeps, "ledger" | "logger">;

/** An operator's grant; `input` is validated by the ledger (InvalidInputError). */
export async function grantPayload(
  deps: AdminDeps,
  rawInput: unknown,
  grantedBy: string,
): Promise<Payload<GrantErrorCode>> {
  try {
    const result = await deps.ledger.grant(rawInput, grantedBy, { log: deps.logger });
    return accepted(result, `Granted ${result.entry.amount} tokens`);
  } catch (error) {
    const userId = (rawInput as { userId: string }).userId;
    return (await adminRefusal(deps, error, userId, "grant")) as Payload<GrantErrorCode>;
  }
}

/** An operator's signed correction; `input` is validated by the ledger (InvalidInputError). */
export async function adjustPayload(
  deps: AdminDeps,
  rawInput: unknown,
  adjustedBy: string,
): Promise<Payload<AdminErrorCode>> {
  try {
    const result = await deps.ledger.adjust(rawInput, adjustedBy, { log: deps.logger });
    return accepted(result, `Adjusted by ${result.entry.amount} tokens`);
  } catch (error) {
    return adminRefusal(deps, error, (rawInput as { userId: string }).userId, "adjustment");
  }
}

export interface TransferPayload {
  readonly fromUserId: string;
  readonly toUserId: string;
  readonly success: boolean;
  readonly message: string;
  readonly debit: LedgerEntry | null;
  readonly credit: LedgerEntry | null;
  readonly errorCode: AdminErrorCode | null;
  readonly replayed: boolean;
}

/** Moves tokens between two users, both sides or neither; `input` is validated by the ledger. */
export async function transferPayload(
  deps: AdminDeps,
  rawInput: unknown,
  transferredBy: string,
): Promise<TransferPayload> {
  const { fromUserId, toUserId } = rawInput as { fromUserId: string; toUserId: string };
  try {
    const { debit, credit, replayed } = await deps.ledger.transfer(rawInput, transferredBy, {
      log: deps.logger,
    });
    const message = `Moved ${credit.amount} tokens from ${fromUserId} (now ${debit.balanceAfter}) to ${toUserId} (now ${credit.balanceAfter})`;
    return { fromUserId, toUserId, success: true, message, debit, credit, errorCode: null, replayed };
  } catch (error) {
    const refused = await adminRefusal(deps, error, fromUserId, "transfer");
    const { message, errorCode } = refused;
    return {
      fromUserId,
      toUserId,
      success: false,
      message,
      debit: null,
      credit: null,
      errorCode,
      replayed: false,
    };
  }
}

/** An operator's refusal as data with the user's unchanged balance; anything else is rethrown. */
async function adminRefusal(
  deps: AdminDeps,
  error: unknown,
  userId: string,
  what: string,
): Promise<Payload<AdminErrorCode>> {
  if (error instanceof InsufficientTokensError) {
    const message = `Not enough tokens: ${error.required} required, ${error.available} available`;
    return refusal(userId, error.available, message, "INSUFFICIENT_TOKENS");
  }
  if (!(error instanceof BalanceLimitError || error instanceof IdempotencyConflictError)) throw error;
  // The statement answers the balance with its refusal; only a transfer's mismatched sides do not.
  const balance = error.available ?? (await deps.ledger.balanceOf(userId)).balance;
  return error instanceof BalanceLimitError
    ? refusal(userId, balance, `A balance cannot exceed ${error.limit} tokens`, "BALANCE_LIMIT_EXCEEDED")
    : refusal(
        userId,
        balance,
        `This idempotency key was already used for a different ${what}`,
        "IDEMPOTENCY_KEY_REUSED",
      );
}

function accepted<Code extends string>(result: WriteResult, what: string): Payload<Code> {
  return {
    userId: result.entry.userId,
    success: true,
    newBalance: result.entry.balanceAfter,
    message: `${what}. New balance: ${result.entry.balanceAfter}`,
    entry: result.entry,
    errorCode: null,
    replayed: result.replayed,
    retryAfterSeconds: null,
  };
}

function refusal<Code extends string>(
  userId: string,
  newBalance: number,
  message: string,
  errorCode: Code,
): Payload<Code> {
  return {
    userId,
    success: false,
    newBalance,
    message,
    entry: null,
    errorCode,
    replayed: false,
    retryAfterSeconds: null,
  };
}
