import type { LedgerEntry } from "./ledger.queries.js";

/** What the ledger's operations take and answer (see LedgerService in ledger.service.ts). */

export interface WriteResult {
  readonly entry: LedgerEntry;
  /** True when an idempotency key matched an earlier, identical request: nothing was written. */
  readonly replayed: boolean;
}

/** A transfer's two entries; `replayed` when its idempotency key matched an identical transfer. */
export interface TransferResult {
  readonly debit: LedgerEntry;
  readonly credit: LedgerEntry;
  readonly replayed: boolean;
}

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
  | { readonly status: "already-imported"; readonly entry: LedgerEntry };

export type ReversalResult =
  | { readonly status: "reversed"; readonly entry: LedgerEntry; readonly refund: LedgerEntry }
  | { readonly status: "duplicate"; readonly entry: LedgerEntry }
  | { readonly status: "no-refund" };

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
