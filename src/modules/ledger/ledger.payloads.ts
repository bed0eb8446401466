import type { Logger } from "pino";
import type { Metrics } from "../../metrics.js";
import { InvalidInputError, parseInput } from "../../validation.js";
import type { RateLimits } from "../limits/rate-limits.js";
import type { LedgerEntry } from "./ledger.queries.js";
import type { AdjustResult, LedgerService, SpendResult, WriteResult } from "./ledger.service.js";
import { spendInputSchema } from "./ledger.validation.js";

/**
 * The answers to a spend and to an operator's write, as GraphQL and REST both give them: the
 * ledger's refusals are values, and each becomes data here (success false, an error code, the
 * unchanged balance the statement saw). A replay is built from the stored entry, so it is identical
 * to the first answer. Only invalid input (InvalidInputError, mapped at the edge) and failures throw.
 */

/** Why a spend was refused; feeds the TypeScript type, the GraphQL enum and the REST status map. */
export const SPEND_ERROR_CODES = ["INSUFFICIENT_TOKENS", "IDEMPOTENCY_KEY_REUSED", "RATE_LIMITED"] as const;
export type SpendErrorCode = (typeof SPEND_ERROR_CODES)[number];

/** Why a grant was refused. */
export const GRANT_ERROR_CODES = ["BALANCE_LIMIT_EXCEEDED", "IDEMPOTENCY_KEY_REUSED"] as const;
export type GrantErrorCode = (typeof GRANT_ERROR_CODES)[number];

interface PayloadFields {
  /** Whose balance the call was about (the caller's for a spend, the granted user's for a grant). */
  readonly userId: string;
  readonly newBalance: number;
  readonly message: string;
  /** With RATE_LIMITED: how long to wait before trying again. */
  readonly retryAfterSeconds: number | null;
}

/** Written (or replayed) with its entry, or refused with a code and no entry. */
export type Payload<Code extends string> = PayloadFields &
  (
    | {
        readonly success: true;
        readonly entry: LedgerEntry;
        readonly errorCode: null;
        readonly replayed: boolean;
      }
    | { readonly success: false; readonly entry: null; readonly errorCode: Code; readonly replayed: false }
  );

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
  let result: SpendResult;
  try {
    result = await decideSpend(deps, userId, rawInput);
  } catch (error) {
    if (error instanceof InvalidInputError) deps.metrics.spends.inc({ outcome: "invalid" });
    throw error;
  }
  deps.metrics.spends.inc({ outcome: spendLabel(result) });
  switch (result.status) {
    case "applied":
      return accepted(result, `Spent ${-result.entry.amount} tokens`);
    case "insufficient":
      return refusal(userId, result.available, notEnough(result), "INSUFFICIENT_TOKENS");
    case "key_reused":
      return refusal(userId, result.available, reused("spend"), "IDEMPOTENCY_KEY_REUSED");
    case "rate_limited": {
      const { retryAfterSeconds } = result;
      const message = `Too many spends: try again in ${retryAfterSeconds} seconds`;
      return { ...refusal(userId, result.available, message, "RATE_LIMITED"), retryAfterSeconds };
    }
  }
}

function spendLabel(result: SpendResult): string {
  switch (result.status) {
    case "applied":
      return result.replayed ? "replay" : "success";
    case "key_reused":
      return "invalid";
    default:
      return result.status;
  }
}

async function decideSpend(deps: SpendDeps, userId: string, rawInput: unknown): Promise<SpendResult> {
  // Refused input is refused before it can use up the user's rate limit.
  const input = parseInput(spendInputSchema, rawInput);
  const limit = await deps.limits.spend(userId);
  if (!limit.allowed) {
    // Counted before the ledger (in Redis): no statement ran to answer the balance, so it is read.
    const { balance } = await deps.ledger.balanceOf(userId);
    return { status: "rate_limited", retryAfterSeconds: limit.retryAfterSeconds, available: balance };
  }
  const rateLimit = "counter" in limit ? limit.counter : undefined;
  return deps.ledger.spend(userId, input, { log: deps.logger, rateLimit });
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
  const result = await deps.ledger.grant(rawInput, grantedBy, { log: deps.logger });
  const userId = (rawInput as { userId: string }).userId;
  // A grant is never insufficient, so its answer carries only grant codes.
  return adminAnswer(userId, result, "grant", "Granted") as Payload<GrantErrorCode>;
}

/** An operator's signed correction; `input` is validated by the ledger (InvalidInputError). */
export async function adjustPayload(
  deps: AdminDeps,
  rawInput: unknown,
  adjustedBy: string,
): Promise<Payload<AdminErrorCode>> {
  const result = await deps.ledger.adjust(rawInput, adjustedBy, { log: deps.logger });
  return adminAnswer((rawInput as { userId: string }).userId, result, "adjustment", "Adjusted by");
}

/** An admin gives a spend's tokens back into its lots (§E row 34); `input` is validated by the ledger. */
export async function reverseSpendPayload(
  deps: AdminDeps,
  rawInput: unknown,
  reversedBy: string,
): Promise<Payload<AdminErrorCode>> {
  const { userId, result } = await deps.ledger.reverseSpend(rawInput, reversedBy, { log: deps.logger });
  return adminAnswer(userId, result, "reversal", "Gave back");
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
  const result = await deps.ledger.transfer(rawInput, transferredBy, { log: deps.logger });
  if (result.status === "applied") {
    const { debit, credit, replayed } = result;
    const message = `Moved ${credit.amount} tokens from ${fromUserId} (now ${debit.balanceAfter}) to ${toUserId} (now ${credit.balanceAfter})`;
    return { fromUserId, toUserId, success: true, message, debit, credit, errorCode: null, replayed };
  }
  const { message, errorCode } = adminAnswer(fromUserId, result, "transfer", "Moved");
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

/** An operator's write as data: the entry, or the refusal with the balance the statement saw. */
function adminAnswer(
  userId: string,
  result: AdjustResult,
  what: string,
  done: string,
): Payload<AdminErrorCode> {
  switch (result.status) {
    case "applied":
      return accepted(result, `${done} ${result.entry.amount} tokens`);
    case "insufficient":
      return refusal(userId, result.available, notEnough(result), "INSUFFICIENT_TOKENS");
    case "balance_limit": {
      const message = `A balance cannot exceed ${result.limit} tokens`;
      return refusal(userId, result.available, message, "BALANCE_LIMIT_EXCEEDED");
    }
    case "key_reused":
      return refusal(userId, result.available, reused(what), "IDEMPOTENCY_KEY_REUSED");
  }
}

const notEnough = (refused: { required: number; available: number }) =>
  `Not enough tokens: ${refused.required} required, ${refused.available} available`;

const reused = (what: string) => `This idempotency key was already used for a different ${what}`;

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
