import type { LedgerEntry } from "./ledger.queries.js";

/**
 * What the ledger's operations take and answer (see LedgerService in ledger.service.ts). A refusal is
 * a value, as ledger_apply's row gives it: nothing was written, and `available` is the balance the
 * statement saw. Only bugs, invalid input (InvalidInputError) and the database's own failures throw.
 */

/** A change written, or with an idempotency key the identical change written before (`replayed`). */
export interface WriteResult {
  readonly status: "applied";
  readonly entry: LedgerEntry;
  /** True when an idempotency key matched an earlier, identical request: nothing was written. */
  readonly replayed: boolean;
}

/** A debit larger than the balance. */
export interface Insufficient {
  readonly status: "insufficient";
  readonly required: number;
  readonly available: number;
}

/** A credit that would take the balance past MAX_BALANCE. */
export interface OverLimit {
  readonly status: "balance_limit";
  readonly limit: number;
  readonly requested: number;
  readonly available: number;
}

/** The idempotency key was used before for a different request. */
export interface KeyReused {
  readonly status: "key_reused";
  readonly available: number;
}

/** The spend limit's window is full. */
export interface RateLimited {
  readonly status: "rate_limited";
  readonly retryAfterSeconds: number;
  readonly available: number;
}

export type Refusal = Insufficient | OverLimit | KeyReused | RateLimited;

export type SpendResult = WriteResult | Insufficient | KeyReused | RateLimited;
export type GrantResult = WriteResult | OverLimit | KeyReused;
/** A signed correction: a debit can be insufficient, a credit over the limit. */
export type AdjustResult = WriteResult | Insufficient | OverLimit | KeyReused;

/**
 * A transfer's two entries (`replayed` when its idempotency key matched an identical transfer), or
 * the refusal of the side that was refused (the debit's first); then neither side was written.
 */
export type TransferResult =
  | {
      readonly status: "applied";
      readonly debit: LedgerEntry;
      readonly credit: LedgerEntry;
      readonly replayed: boolean;
    }
  | Insufficient
  | OverLimit
  | KeyReused;

export interface PurchaseRefund {
  readonly storeRef: string;
  readonly metadata: Record<string, unknown>;
  /** The refunded share of the purchase, 0 < ratio <= 1 (default 1: all of it). */
  readonly ratio?: number | undefined;
}

export type RefundResult =
  | {
      readonly status: "refunded";
      readonly entry: LedgerEntry;
      readonly purchase: LedgerEntry;
      /** Tokens taken back: what was left of the purchase under the balance's row lock. */
      readonly recovered: number;
      /** Tokens the refund should have taken but could not (spent, and no other lots left). */
      readonly shortfall: number;
      /** ceil(granted × ratio): what the refund asks back. */
      readonly target: number;
      /** Taken from the purchase's own lot. */
      readonly fromLot: number;
      /** The lot's tokens that had expired unused: counted as returned. */
      readonly alreadyExpired: number;
      /** Taken from the owner's other lots, soonest-expiring first. */
      readonly fromOthers: number;
    }
  | { readonly status: "duplicate"; readonly entry: LedgerEntry }
  | { readonly status: "no-purchase" };

export interface RefundReversal {
  readonly storeRef: string;
  readonly metadata: Record<string, unknown>;
}

/** A balance carried over from a legacy store (a RevenueCat subscriber attribute). */
export interface LegacyImport {
  /** The legacy customer; each is imported at most once, whatever user it credits. */
  readonly customerId: string;
  readonly userId: string;
  readonly tokens: number;
  /** Where it came from: the source, the attribute's raw value and when it was last set. */
  readonly metadata: Record<string, unknown>;
}

export type LegacyImportResult =
  | { readonly status: "imported"; readonly entry: LedgerEntry }
  | { readonly status: "already-imported"; readonly entry: LedgerEntry }
  | OverLimit;

export type ReversalResult =
  | { readonly status: "reversed"; readonly entry: LedgerEntry; readonly refund: LedgerEntry }
  | { readonly status: "duplicate"; readonly entry: LedgerEntry }
  | { readonly status: "no-refund" }
  /** Giving the tokens back would take the balance past MAX_BALANCE; nothing was written. */
  | OverLimit;

/** A lot's new end, named by the store transaction that opened it. */
export interface LotEndChange {
  readonly storeRef: string;
  readonly expiresAt: Date | string;
}

/** `changed`: the end moved (a cut to a past end expired `expired` tokens); `unchanged`: not later / not earlier. */
export interface LotEndResult {
  readonly status: "changed" | "unchanged" | "no-lot";
  readonly expired: number;
  /** The owner's balance after it. */
  readonly balance: number;
}

export interface ExpiryResult {
  readonly userId: string;
  readonly expired: number;
  readonly balance: number;
}

/** Holds (issue 19; ledger.holds.ts). */
export type HoldStatus = "active" | "captured" | "released" | "expired";

export interface Hold {
  /** A bigint, as a decimal string. */
  readonly id: string;
  readonly userId: string;
  readonly amount: number;
  readonly status: HoldStatus;
  /** What its capture took; null until captured. */
  readonly captured: number | null;
  readonly createdAt: Date;
  readonly expiresAt: Date;
  readonly closedAt: Date | null;
  readonly description: string | null;
  readonly metadata: Record<string, unknown> | null;
}

/** Who acts on a hold: a non-admin acts on (and sees) only its own holds. */
export interface HoldActor {
  readonly userId: string;
  readonly admin: boolean;
}

export type HoldOverage = "REJECT" | "CAP";

export type ReserveResult =
  | { readonly status: "reserved"; readonly hold: Hold; readonly replayed: boolean }
  | { readonly status: "insufficient"; readonly required: number; readonly available: number }
  | { readonly status: "too_many_holds"; readonly limit: number }
  | { readonly status: "rate_limited"; readonly retryAfterSeconds: number; readonly available: number }
  | { readonly status: "key_reused"; readonly available: number };

export type CaptureResult =
  | {
      readonly status: "captured";
      readonly hold: Hold;
      readonly entry: LedgerEntry;
      readonly replayed: boolean;
      /** What a CAP capture asked beyond the hold and the free balance could not cover. */
      readonly shortfall: number;
    }
  | { readonly status: "hold_not_found" }
  | {
      readonly status: "hold_expired" | "hold_released" | "hold_already_captured" | "amount_exceeds_hold";
      readonly hold: Hold;
    };

export type ReleaseResult =
  | { readonly status: "released"; readonly hold: Hold; readonly replayed: boolean }
  | { readonly status: "hold_not_found" }
  | { readonly status: "hold_already_captured"; readonly hold: Hold };

export interface HoldPage {
  readonly holds: Hold[];
  readonly hasMore: boolean;
}

/** Holds the sweeper expired, per user asked about. */
export interface HoldExpiryResult {
  readonly holdId: string;
  readonly expired: boolean;
}
