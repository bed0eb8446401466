import { sql } from "drizzle-orm";
import { type Executor, queryRows } from "../../db/client.js";
import { type EntryKind, type LotSource, MAX_BALANCE } from "../../db/schema.js";
import { type EntryRow, type LedgerEntry, toEntry } from "./ledger.queries.js";
import type { Hold, HoldOverage, HoldStatus } from "./ledger.types.js";

/**
 * The one statement that moves money, `ledger_apply` (its source and contract:
 * src/modules/ledger/sql/ledger_apply.sql). Private to the
 * ledger module: everything else calls the named operations in ledger.service.ts. For each change it
 * moves the balance (never below 0, never above MAX_BALANCE), appends the entry with its
 * `balance_after` and version, and NOTIFYs; changes to one user apply in order against a running
 * balance, and a refused change fails alone. Alone it is its own transaction; inside a caller's
 * transaction it commits (and its NOTIFY is delivered) with everything else.
 */

/** One balance change to apply. */
export interface ChangeRequest {
  readonly userId: string;
  /** Signed: credits are positive, debits negative. */
  readonly delta: number;
  /** "what_is_left": a debit that takes at most the balance (a refund of tokens partly spent). */
  readonly mode?: "exact" | "what_is_left";
  readonly kind: EntryKind;
  readonly description: string | null;
  readonly metadata?: Record<string, unknown> | null | undefined;
  readonly idempotencyKey?: string | null | undefined;
  /** SHA-256 of the request that used the idempotency key; a reuse with other input is refused. */
  readonly requestHash?: string | null | undefined;
  /** What outside thing this entry answers to, such as a store transaction; unique per kind. */
  readonly externalRef?: string | null | undefined;
  /** A fixed-window counter checked first, in the same statement (the database rate-limit store). */
  readonly rateLimit?:
    | { readonly key: string; readonly points: number; readonly windowMs: number }
    | undefined;
  /** What to do (default "change"); the lot fields below belong to it (ledger_apply.sql's contract). */
  readonly op?: LedgerOp | undefined;
  readonly lot?: LotFields | undefined;
  /** A refund's share of the purchase, 0 < ratio <= 1 (default 1). */
  readonly ratio?: number | undefined;
  /** The hold a capture, release or expire_hold names; a reserve's TTL and active-hold limit. */
  readonly hold?: HoldFields | undefined;
  /** The SPEND entry a reverse_spend gives back. */
  readonly reversesEntry?: string | undefined;
}

export interface HoldFields {
  readonly id?: string | undefined;
  readonly ttlSeconds?: number | undefined;
  readonly limit?: number | undefined;
  readonly overage?: HoldOverage | undefined;
}

export type LedgerOp =
  | "change"
  | "expire"
  | "refund"
  | "reverse_refund"
  | "reverse_spend"
  | "extend"
  | "cut"
  | "reserve"
  | "capture"
  | "release"
  | "expire_hold";

/** The outcomes of hold ops that write no entry; `hold` is the hold after the request (if any). */
export const HOLD_OUTCOMES = [
  "reserved",
  "hold_replay",
  "too_many_holds",
  "released",
  "hold_closed",
  "hold_expired",
  "hold_released",
  "hold_already_captured",
  "amount_exceeds_hold",
  "hold_not_found",
] as const;
export type HoldOutcome = (typeof HOLD_OUTCOMES)[number];

/** The lot a credit opens, or the lot a refund, extension or cut names (by `ref`). */
export interface LotFields {
  readonly source?: LotSource | undefined;
  /** The store transaction, `STORE:transaction_id`; one lot per ref. */
  readonly ref?: string | undefined;
  readonly chain?: string | null | undefined;
  readonly product?: string | null | undefined;
  readonly startsAt?: Date | string | null | undefined;
  /** null or absent: never. */
  readonly expiresAt?: Date | string | null | undefined;
  readonly rollover?: { readonly cap: number } | null | undefined;
  /** After opening, the free remainder of the user's other open lots of `chain` expires now. */
  readonly supersede?: boolean | undefined;
}

export type ChangeOutcome =
  /** A capture's outcome carries the hold as it left it. */
  | { readonly status: "applied"; readonly entry: LedgerEntry; readonly hold?: Hold }
  /**
   * The idempotency key was used before: the earlier entry, the hash of the request that made it, and
   * the balance now.
   */
  | {
      readonly status: "replay";
      readonly entry: LedgerEntry;
      readonly requestHash: string | null;
      readonly available: number;
    }
  /** The external reference was used before: the earlier entry. */
  | { readonly status: "duplicate"; readonly entry: LedgerEntry; readonly hold?: Hold }
  | { readonly status: "insufficient"; readonly available: number }
  | { readonly status: "limit"; readonly available: number }
  | { readonly status: "rate_limited"; readonly available: number; readonly retryAfterMs: number }
  /** expire, extend and cut: no entry of their own; `expired` is the tokens they expired. */
  | {
      readonly status: "expired" | "lot_changed" | "unchanged" | "no_lot";
      readonly available: number;
      readonly expired: number;
    }
  | {
      readonly status: HoldOutcome;
      readonly available: number;
      readonly hold: Hold | null;
      /** hold_replay: the hash of the request that made the hold. */
      readonly requestHash: string | null;
    };

export interface OutcomeRow extends Omit<EntryRow, "id"> {
  ord: number;
  request_hash: string | null;
  status: ChangeOutcome["status"];
  id: string | number | null;
  available: number | null;
  retry_after_ms: number | null;
  /** The hold as the request left it (hold ops, a capture's entry too): to_jsonb of its row. */
  hold_after: Record<string, unknown> | string | null;
}

export const APPLY_STATEMENT = "SELECT * FROM ledger_apply($1::jsonb, $2::integer)";

/** The statement's input: one JSON array, so the statement has two parameters whatever the batch size. */
export function encodeRequests(requests: readonly ChangeRequest[]): string {
  return JSON.stringify(
    requests.map((request, ord) => ({
      ord,
      user_id: request.userId,
      delta: request.delta,
      mode: request.mode ?? "exact",
      kind: request.kind,
      description: request.description,
      metadata: request.metadata ?? null,
      idempotency_key: request.idempotencyKey ?? null,
      request_hash: request.requestHash ?? null,
      external_ref: request.externalRef ?? null,
      rate_key: request.rateLimit?.key ?? null,
      rate_points: request.rateLimit?.points ?? null,
      rate_window_ms: request.rateLimit?.windowMs ?? null,
      ...(request.op && request.op !== "change" ? { op: request.op } : {}),
      ...(request.lot ? encodeLot(request.lot) : {}),
      ...(request.ratio !== undefined ? { ratio: request.ratio } : {}),
      ...(request.hold ? encodeHold(request.hold) : {}),
      ...(request.reversesEntry ? { reverses_entry: request.reversesEntry } : {}),
    })),
  );
}

const isoOrNull = (time: Date | string | null | undefined) =>
  time == null ? null : time instanceof Date ? time.toISOString() : time;

function encodeLot(lot: LotFields): Record<string, unknown> {
  return {
    lot_source: lot.source ?? null,
    lot_ref: lot.ref ?? null,
    lot_chain: lot.chain ?? null,
    lot_product: lot.product ?? null,
    lot_starts_at: isoOrNull(lot.startsAt),
    lot_expires_at: isoOrNull(lot.expiresAt),
    lot_rollover: lot.rollover ?? null,
    lot_supersede: lot.supersede ?? false,
  };
}

function encodeHold(hold: HoldFields): Record<string, unknown> {
  return {
    hold_id: hold.id ?? null,
    hold_ttl_seconds: hold.ttlSeconds ?? null,
    hold_limit: hold.limit ?? null,
    overage: hold.overage ?? null,
  };
}

/** A hold as ledger_apply answers it (to_jsonb of its token_holds row). */
export function toHold(row: Record<string, unknown>): Hold {
  const time = (value: unknown) => (value == null ? null : new Date(value as string));
  return {
    id: String(row.id),
    userId: String(row.user_id),
    amount: Number(row.amount),
    status: row.status as HoldStatus,
    captured: row.captured == null ? null : Number(row.captured),
    createdAt: time(row.created_at) as Date,
    expiresAt: time(row.expires_at) as Date,
    closedAt: time(row.closed_at),
    description: (row.description as string | null) ?? null,
    metadata: (row.metadata as Record<string, unknown> | null) ?? null,
  };
}

const holdAfter = ({ hold_after: hold }: OutcomeRow): Hold | null =>
  hold ? toHold(typeof hold === "string" ? JSON.parse(hold) : hold) : null;

const isHoldOutcome = (status: string): status is HoldOutcome =>
  (HOLD_OUTCOMES as readonly string[]).includes(status);

/** The outcomes, in the order of the requests. */
export function decodeOutcomes(rows: readonly OutcomeRow[], count: number): ChangeOutcome[] {
  const outcomes = new Array<ChangeOutcome>(count);
  for (const row of rows) outcomes[row.ord] = decodeOutcome(row);
  for (let ord = 0; ord < count; ord += 1) {
    if (!outcomes[ord]) throw new Error(`ledger_apply gave no outcome for request ${ord} of ${count}`);
  }
  return outcomes;
}

function decodeOutcome(row: OutcomeRow): ChangeOutcome {
  switch (row.status) {
    case "applied":
    case "duplicate": {
      const hold = holdAfter(row);
      return { status: row.status, entry: toEntry(row as EntryRow), ...(hold ? { hold } : {}) };
    }
    case "replay":
      return {
        status: "replay",
        entry: toEntry(row as EntryRow),
        requestHash: row.request_hash,
        available: row.available ?? 0,
      };
    case "rate_limited":
      return {
        status: "rate_limited",
        available: row.available ?? 0,
        retryAfterMs: row.retry_after_ms ?? 1000,
      };
    case "expired":
    case "lot_changed":
    case "unchanged":
    case "no_lot":
      return { status: row.status, available: row.available ?? 0, expired: row.amount ?? 0 };
    default:
      if (isHoldOutcome(row.status))
        return {
          status: row.status,
          available: row.available ?? 0,
          hold: holdAfter(row),
          requestHash: row.request_hash,
        };
      return { status: row.status, available: row.available ?? 0 } as ChangeOutcome;
  }
}

/** Applies changes inside the caller's transaction (the webhook's), unprepared through drizzle. */
export async function applyChanges(
  executor: Executor,
  requests: readonly ChangeRequest[],
): Promise<ChangeOutcome[]> {
  const rows = await queryRows<OutcomeRow>(
    executor,
    sql`SELECT * FROM ledger_apply(${encodeRequests(requests)}::jsonb, ${MAX_BALANCE}::integer)`,
  );
  return decodeOutcomes(rows, requests.length);
}
