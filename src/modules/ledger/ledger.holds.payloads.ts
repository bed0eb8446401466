import { parseInput } from "../../validation.js";
import type { SpendDeps } from "./ledger.payloads.js";
import type { LedgerEntry } from "./ledger.queries.js";
import type { Hold, HoldActor } from "./ledger.types.js";
import { HOLD_MAX_TTL_SECONDS, reserveInputSchema } from "./ledger.validation.js";

/**
 * The answers to reserve, capture and release, as GraphQL and REST both give them: like a spend's,
 * business refusals are data (success false, an errorCode), not errors; malformed input (an amount
 * that is not a whole number, a missing idempotency key) throws InvalidInputError (400 /
 * BAD_USER_INPUT) like a spend's. A TTL out of range is the one input refusal with a code of its own
 * (INVALID_TTL), since an app picks it from a job's expected duration and may want to tell it apart.
 */

/** Why a hold operation was refused; feeds the TypeScript type, the GraphQL enum and the REST status map. */
export const HOLD_ERROR_CODES = [
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
export type HoldErrorCode = (typeof HOLD_ERROR_CODES)[number];

export interface HoldPayload {
  /** Whose balance the answer shows: the hold's owner, or the caller when there is no hold. */
  readonly userId: string;
  readonly success: boolean;
  readonly message: string;
  /** The hold as it is now; null when there is none (a refused reserve, an unknown hold). */
  readonly hold: Hold | null;
  /** A capture's SPEND entry. */
  readonly entry: LedgerEntry | null;
  readonly errorCode: HoldErrorCode | null;
  readonly replayed: boolean;
  /** With RATE_LIMITED. */
  readonly retryAfterSeconds: number | null;
  /** A CAP capture's tokens asked beyond the hold that the free balance could not cover. */
  readonly shortfall: number | null;
}

type Deps = Pick<SpendDeps, "ledger" | "limits" | "logger">;

/** Validates, rate-limits (the spend limit, same key) and reserves. */
export async function reservePayload(deps: Deps, userId: string, rawInput: unknown): Promise<HoldPayload> {
  const ttl = (rawInput as { ttlSeconds?: unknown } | null)?.ttlSeconds;
  if (typeof ttl === "number" && !(Number.isInteger(ttl) && ttl >= 1 && ttl <= HOLD_MAX_TTL_SECONDS)) {
    const message = `ttlSeconds must be a whole number from 1 to ${HOLD_MAX_TTL_SECONDS} (24 hours)`;
    return refusal(userId, message, "INVALID_TTL");
  }
  // Refused input is refused before it can use up the user's rate limit.
  const input = parseInput(reserveInputSchema, rawInput);
  const limit = await deps.limits.spend(userId);
  if (!limit.allowed) return rateLimited(userId, limit.retryAfterSeconds);
  const rateLimit = "counter" in limit ? limit.counter : undefined;
  const result = await deps.ledger.reserve(userId, input, { log: deps.logger, rateLimit });
  switch (result.status) {
    case "reserved": {
      const { hold, replayed } = result;
      const message = `Reserved ${hold.amount} tokens until ${hold.expiresAt.toISOString()}`;
      return { ...answer(userId, message), success: true, hold, replayed };
    }
    case "insufficient":
      return refusal(
        userId,
        `Not enough tokens: ${result.required} required, ${result.available} available`,
        "INSUFFICIENT_TOKENS",
      );
    case "too_many_holds":
      return refusal(
        userId,
        `Too many active holds: at most ${result.limit}; capture or release one first`,
        "TOO_MANY_HOLDS",
      );
    case "rate_limited":
      return rateLimited(userId, result.retryAfterSeconds);
    case "key_reused":
      return refusal(
        userId,
        "This idempotency key was already used for a different reserve",
        "IDEMPOTENCY_KEY_REUSED",
      );
  }
}

/** Captures a hold (the actor's own, or anyone's for an admin); `rawInput` is validated by the ledger. */
export async function capturePayload(
  deps: Deps,
  actor: HoldActor,
  holdId: string,
  rawInput: unknown,
): Promise<HoldPayload> {
  const result = await deps.ledger.capture(holdId, rawInput, actor, { log: deps.logger });
  switch (result.status) {
    case "captured": {
      const { hold, entry, replayed, shortfall } = result;
      const released = hold.amount - -entry.amount;
      const message = `Captured ${-entry.amount} tokens${released > 0 ? `, released ${released}` : ""}. New balance: ${entry.balanceAfter}`;
      return { ...answer(hold.userId, message), success: true, hold, entry, replayed, shortfall };
    }
    case "hold_not_found":
      return notFound(actor, holdId);
    case "hold_expired":
      return refused(result.hold, "HOLD_EXPIRED", "The hold expired before its capture");
    case "hold_released":
      return refused(result.hold, "HOLD_RELEASED", "The hold was released; nothing can be captured");
    case "hold_already_captured":
      return refused(
        result.hold,
        "HOLD_ALREADY_CAPTURED",
        `The hold was already captured for ${result.hold.captured ?? 0} tokens`,
      );
    case "amount_exceeds_hold":
      return refused(
        result.hold,
        "AMOUNT_EXCEEDS_HOLD",
        `The capture asks for more than the ${result.hold.amount} tokens held`,
      );
  }
}

/** Releases a hold; releasing a released or expired hold replays. */
export async function releasePayload(deps: Deps, actor: HoldActor, holdId: string): Promise<HoldPayload> {
  const result = await deps.ledger.release(holdId, actor, { log: deps.logger });
  switch (result.status) {
    case "released": {
      const { hold, replayed } = result;
      const message =
        hold.status === "expired"
          ? `The hold had expired; its ${hold.amount} tokens are free again`
          : `Released ${hold.amount} tokens`;
      return { ...answer(hold.userId, message), success: true, hold, replayed };
    }
    case "hold_not_found":
      return notFound(actor, holdId);
    case "hold_already_captured":
      return refused(
        result.hold,
        "HOLD_ALREADY_CAPTURED",
        `The hold was captured for ${result.hold.captured ?? 0} tokens; there is nothing to release`,
      );
  }
}

function notFound(actor: HoldActor, holdId: string): HoldPayload {
  // Someone else's hold is answered exactly like one that does not exist.
  return refusal(actor.userId, `No hold ${holdId}`, "HOLD_NOT_FOUND");
}

function refused(hold: Hold, errorCode: HoldErrorCode, message: string): HoldPayload {
  return { ...refusal(hold.userId, message, errorCode), hold };
}

function rateLimited(userId: string, retryAfterSeconds: number): HoldPayload {
  const message = `Too many spends and holds: try again in ${retryAfterSeconds} seconds`;
  return { ...refusal(userId, message, "RATE_LIMITED"), retryAfterSeconds };
}

function refusal(userId: string, message: string, errorCode: HoldErrorCode): HoldPayload {
  return { ...answer(userId, message), errorCode };
}

/** An answer's fields, empty: refusals and successes fill in theirs. */
function answer(userId: string, message: string): HoldPayload {
  return {
    userId,
    success: false,
    message,
    hold: null,
    entry: null,
    errorCode: null,
    replayed: false,
    retryAfterSeconds: null,
    shortfall: null,
  };
}
