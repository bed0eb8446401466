import { createHash } from "node:crypto";
import stringify from "safe-stable-stringify";
import { MAX_BALANCE } from "../../db/schema.js";
import type { ChangeOutcome, ChangeRequest } from "./ledger.statements.js";
import type { Refusal, WriteResult } from "./ledger.types.js";

/**
 * What a write came to, as a value: the new entry; for a replayed idempotency key the original one (a
 * reuse with other input is `key_reused`); or the refusal, with the balance the statement saw.
 * `refusals` are the ones the operation can meet (a debit is never over the limit, a credit never
 * insufficient); any other answer from the statement is a bug, and throws.
 */
export function written<Status extends Refusal["status"]>(
  outcome: ChangeOutcome,
  request: ChangeRequest,
  refusals: readonly Status[],
): WriteResult | Extract<Refusal, { status: Status }> {
  const result = resultOf(outcome, request);
  if (result.status !== "applied" && !(refusals as readonly string[]).includes(result.status))
    throw new Error(`ledger_apply answered ${result.status} to a ${request.kind} of ${request.delta}`);
  return result as WriteResult | Extract<Refusal, { status: Status }>;
}

function resultOf(outcome: ChangeOutcome, request: ChangeRequest): WriteResult | Refusal {
  const amount = Math.abs(request.delta);
  switch (outcome.status) {
    case "applied":
      return { status: "applied", entry: outcome.entry, replayed: false };
    case "replay":
      if (outcome.requestHash === (request.requestHash ?? null))
        return { status: "applied", entry: outcome.entry, replayed: true };
      return { status: "key_reused", available: outcome.available };
    case "duplicate":
      return { status: "applied", entry: outcome.entry, replayed: true };
    case "insufficient":
      return { status: "insufficient", required: amount, available: outcome.available };
    case "limit":
      return { status: "balance_limit", limit: MAX_BALANCE, requested: amount, available: outcome.available };
    case "rate_limited": {
      const retryAfterSeconds = Math.max(1, Math.ceil(outcome.retryAfterMs / 1000));
      return { status: "rate_limited", retryAfterSeconds, available: outcome.available };
    }
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
