import { createHash } from "node:crypto";
import stringify from "safe-stable-stringify";
import { MAX_BALANCE } from "../../db/schema.js";
import {
  BalanceLimitError,
  IdempotencyConflictError,
  InsufficientTokensError,
  RateLimitedError,
} from "./ledger.errors.js";
import type { ChangeOutcome, ChangeRequest } from "./ledger.statements.js";
import type { WriteResult } from "./ledger.types.js";

/**
 * What a write came to: the new entry, or for a replayed idempotency key the original one (a reuse
 * with other input is IdempotencyConflictError); every refusal as the error that names it.
 */
export function written(outcome: ChangeOutcome, request: ChangeRequest): WriteResult {
  const amount = Math.abs(request.delta);
  switch (outcome.status) {
    case "applied":
      return { entry: outcome.entry, replayed: false };
    case "replay":
      if (outcome.requestHash === (request.requestHash ?? null))
        return { entry: outcome.entry, replayed: true };
      throw new IdempotencyConflictError(request.idempotencyKey ?? "", outcome.available);
    case "duplicate":
      return { entry: outcome.entry, replayed: true };
    case "insufficient":
      throw new InsufficientTokensError(amount, outcome.available);
    case "limit":
      throw new BalanceLimitError(MAX_BALANCE, amount, outcome.available);
    case "rate_limited":
      throw new RateLimitedError(Math.max(1, Math.ceil(outcome.retryAfterMs / 1000)), outcome.available);
    default:
      // expire, extend and cut answer lot outcomes, read by their own operations (ledger.lots.ts).
      throw new Error(`ledger_apply answered ${outcome.status} to a ${request.kind} change`);
  }
}

/** SHA-256 of a request, stable under key order, stored beside an idempotency key. */
export function requestHash(request: unknown): string {
  return createHash("sha256")
    .update(stringify(request) ?? "")
    .digest("hex");
}
