import { and, desc, eq, lt } from "drizzle-orm";
import type { DatabaseHandle, Executor } from "../../db/client.js";
import { holdsTable } from "../../db/schema.js";
import { parseInput } from "../../validation.js";
import { requestHash } from "./ledger.outcomes.js";
import { type ChangeOutcome, type ChangeRequest, toHold as toHoldRow } from "./ledger.statements.js";
import type {
  CaptureResult,
  Hold,
  HoldActor,
  HoldExpiryResult,
  HoldOverage,
  HoldPage,
  HoldStatus,
  ReleaseResult,
  ReserveResult,
} from "./ledger.types.js";
import { captureInputSchema, isHoldId, reserveInputSchema } from "./ledger.validation.js";

/**
 * Holds (issue 19): set tokens aside before a job whose price is known only after it, charge what it
 * used, give back the rest. Each operation is one request to ledger_apply (the rules are in its
 * contract, src/modules/ledger/sql/ledger_apply.sql: a hold keeps the soonest-expiring tokens, in
 * their lots, a capture is one SPEND entry drawn like a spend, the TTL is enforced by the batch's
 * clock). The service (ledger.service.ts) gives each
 * its way to apply a request; refusals are values, as the contract with the API says.
 */
type Apply = (request: ChangeRequest) => Promise<ChangeOutcome>;

/** How an operation reads (the caller's transaction, or the database) and writes. */
export interface HoldContext {
  readonly executor: Executor;
  readonly apply: Apply;
  readonly settings: HoldSettings;
  /** A hold by id, whoever owns it (a prepared statement outside a caller's transaction). */
  readonly read: (holdId: string) => Promise<Hold | null>;
}

/**
 * Whose hold an actor may act on: a user names only its own (ledger_apply answers hold_not_found
 * for another's, so no read is needed first); an admin's hold is looked up.
 */
async function ownerFor(read: HoldContext["read"], holdId: string, actor: HoldActor): Promise<string | null> {
  if (!isHoldId(holdId)) return null;
  return actor.admin ? ((await read(holdId))?.userId ?? null) : actor.userId;
}

export interface HoldQuery {
  readonly status?: HoldStatus | undefined;
  readonly first: number;
  /** The id of the last hold of the previous page. */
  readonly after?: string | undefined;
}

export interface HoldSettings {
  /** A reserve's TTL when it gives none (HOLD_DEFAULT_TTL_SECONDS). */
  readonly defaultTtlSeconds: number;
  /** Active holds one user may have (HOLD_MAX_ACTIVE_PER_USER). */
  readonly maxActivePerUser: number;
  /** What a capture above its hold does when it does not say (HOLD_CAPTURE_OVERAGE). */
  readonly captureOverage: HoldOverage;
  /** Told the tokens a CAP capture could not cover (the capture-shortfall metric). */
  readonly onCaptureShortfall?: ((tokens: number) => void) | undefined;
}

export const DEFAULT_HOLD_SETTINGS: HoldSettings = {
  defaultTtlSeconds: 600,
  maxActivePerUser: 16,
  captureOverage: "REJECT",
};

/** Reserves `amount` free tokens for the user, idempotent by (user, key) with a request hash. */
export async function reserve(
  { apply, settings }: HoldContext,
  userId: string,
  rawInput: unknown,
  rateLimit: ChangeRequest["rateLimit"],
): Promise<ReserveResult> {
  const input = parseInput(reserveInputSchema, rawInput);
  const description = input.description ?? null;
  const metadata = input.metadata ?? null;
  const hash = requestHash({
    op: "reserve",
    amount: input.amount,
    ttlSeconds: input.ttlSeconds ?? null,
    description,
    metadata,
  });
  const outcome = await apply({
    userId,
    delta: -input.amount,
    kind: "SPEND",
    description,
    metadata,
    idempotencyKey: input.idempotencyKey,
    requestHash: hash,
    rateLimit,
    op: "reserve",
    hold: { ttlSeconds: input.ttlSeconds ?? settings.defaultTtlSeconds, limit: settings.maxActivePerUser },
  });
  switch (outcome.status) {
    case "reserved":
      return { status: "reserved", hold: holdIn(outcome), replayed: false };
    case "hold_replay":
      return outcome.requestHash === hash
        ? { status: "reserved", hold: holdIn(outcome), replayed: true }
        : { status: "key_reused", available: outcome.available };
    case "insufficient":
      return { status: "insufficient", required: input.amount, available: outcome.available };
    case "too_many_holds":
      return { status: "too_many_holds", limit: settings.maxActivePerUser };
    case "rate_limited":
      return {
        status: "rate_limited",
        retryAfterSeconds: Math.max(1, Math.ceil(outcome.retryAfterMs / 1000)),
        available: outcome.available,
      };
    default:
      throw new Error(`ledger_apply answered ${outcome.status} to a reserve`);
  }
}

/** Captures `amount` of a hold as one SPEND entry; idempotent by the hold (the same amount replays). */
export async function capture(
  { apply, settings, read }: HoldContext,
  holdId: string,
  rawInput: unknown,
  actor: HoldActor,
): Promise<CaptureResult> {
  const input = parseInput(captureInputSchema, rawInput);
  const userId = await ownerFor(read, holdId, actor);
  if (!userId) return { status: "hold_not_found" };
  const outcome = await apply({
    userId,
    delta: -input.amount,
    kind: "SPEND",
    description: input.description ?? null,
    metadata: input.metadata ?? null,
    op: "capture",
    hold: { id: holdId, overage: input.overage ?? settings.captureOverage },
  });
  switch (outcome.status) {
    case "applied":
    case "duplicate": {
      const { entry } = outcome;
      const { hold } = outcome;
      if (!hold) throw new Error(`ledger_apply answered a capture of ${holdId} without its hold`);
      if (outcome.status === "duplicate" && Number(entry.metadata?.requested) !== input.amount)
        return { status: "hold_already_captured", hold };
      const shortfall = Number(entry.metadata?.shortfall ?? 0);
      if (outcome.status === "applied" && shortfall > 0) settings.onCaptureShortfall?.(shortfall);
      return { status: "captured", hold, entry, replayed: outcome.status === "duplicate", shortfall };
    }
    case "hold_expired":
    case "hold_released":
    case "amount_exceeds_hold":
      return { status: outcome.status, hold: holdIn(outcome) };
    case "hold_not_found":
      return { status: "hold_not_found" };
    default:
      throw new Error(`ledger_apply answered ${outcome.status} to a capture`);
  }
}

/** Releases a hold; a released or expired hold replays, a captured one is refused. */
export async function release(
  { apply, read }: HoldContext,
  holdId: string,
  actor: HoldActor,
): Promise<ReleaseResult> {
  const userId = await ownerFor(read, holdId, actor);
  if (!userId) return { status: "hold_not_found" };
  const outcome = await apply(holdRequest({ id: holdId, userId }, "release"));
  switch (outcome.status) {
    case "released":
    case "hold_closed":
      return { status: "released", hold: holdIn(outcome), replayed: outcome.status === "hold_closed" };
    case "hold_already_captured":
      return { status: "hold_already_captured", hold: holdIn(outcome) };
    case "hold_not_found":
      return { status: "hold_not_found" };
    default:
      throw new Error(`ledger_apply answered ${outcome.status} to a release`);
  }
}

/** Ends holds past their TTL (the sweeper's call); `expired` is false when it was already closed. */
export function expireHolds(
  { apply }: HoldContext,
  holds: readonly { readonly id: string; readonly userId: string }[],
): Promise<HoldExpiryResult[]> {
  return Promise.all(
    holds.map(async (hold) => {
      const outcome = await apply(holdRequest(hold, "expire_hold"));
      return { holdId: hold.id, expired: outcome.status === "hold_expired" };
    }),
  );
}

function holdRequest(
  hold: { readonly id: string; readonly userId: string },
  op: "release" | "expire_hold",
): ChangeRequest {
  return { userId: hold.userId, delta: 0, kind: "SPEND", description: null, op, hold: { id: hold.id } };
}

function holdIn(outcome: ChangeOutcome): Hold {
  if (!("hold" in outcome) || !outcome.hold)
    throw new Error(`ledger_apply answered ${outcome.status} without its hold`);
  return outcome.hold;
}

const ANYONE: HoldActor = { userId: "", admin: true };

/** Reads a hold by id: in the caller's transaction, or by a prepared statement (the hot path). */
export function holdReader(
  database: Pick<DatabaseHandle, "query">,
  executor: Executor | undefined,
): HoldContext["read"] {
  if (executor) return (holdId) => holdOf(executor, holdId, ANYONE);
  return async (holdId) => {
    if (!isHoldId(holdId)) return null;
    const [row] = await database.query<Record<string, unknown>>(HOLD_BY_ID, [holdId]);
    return row ? toHoldRow(row) : null;
  };
}

const HOLD_BY_ID = "SELECT * FROM token_holds WHERE id = $1::bigint";

/** A hold by id, if the actor may see it (its owner, or an admin). */
export async function holdOf(executor: Executor, holdId: string, actor: HoldActor): Promise<Hold | null> {
  if (!isHoldId(holdId)) return null;
  const [row] = await executor
    .select()
    .from(holdsTable)
    .where(eq(holdsTable.id, Number(holdId)))
    .limit(1);
  if (!row || (!actor.admin && row.userId !== actor.userId)) return null;
  return toHold(row);
}

/** A user's holds, newest first; `after` is the id of the last hold of the previous page. */
export async function holdsOf(executor: Executor, userId: string, query: HoldQuery): Promise<HoldPage> {
  const first = Math.max(1, Math.min(100, Math.trunc(query.first)));
  const rows = await executor
    .select()
    .from(holdsTable)
    .where(
      and(
        eq(holdsTable.userId, userId),
        query.status ? eq(holdsTable.status, query.status) : undefined,
        query.after && isHoldId(query.after) ? lt(holdsTable.id, Number(query.after)) : undefined,
      ),
    )
    .orderBy(desc(holdsTable.id))
    .limit(first + 1);
  return { holds: rows.slice(0, first).map(toHold), hasMore: rows.length > first };
}

function toHold(row: typeof holdsTable.$inferSelect): Hold {
  const { idempotencyKey: _key, requestHash: _hash, ...hold } = row;
  return { ...hold, id: String(row.id) };
}
