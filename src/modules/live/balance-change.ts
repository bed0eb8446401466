import type { EntryKind } from "../../db/schema.js";
import type { ExpiringTokens } from "../ledger/ledger.lot-queries.js";

/** Why a balance changed, as an app shows it; the entry's own kind stays on `transaction.kind`. */
export const BALANCE_CHANGE_REASONS = [
  "SNAPSHOT",
  "PURCHASE",
  "SPEND",
  "GRANT",
  "ADJUSTMENT",
  "REFUND",
  "REVERSAL",
  "EXPIRE",
] as const;
export type BalanceChangeReason = (typeof BALANCE_CHANGE_REASONS)[number];

/**
 * Each entry kind's reason. A legacy import counts as a grant (tokens given, not bought here); both
 * sides of an operator's transfer count as adjustments (an operator moved them).
 */
const REASON_OF_KIND: Record<EntryKind, BalanceChangeReason> = {
  PURCHASE: "PURCHASE",
  SPEND: "SPEND",
  GRANT: "GRANT",
  LEGACY_IMPORT: "GRANT",
  ADJUSTMENT: "ADJUSTMENT",
  TRANSFER: "ADJUSTMENT",
  REFUND: "REFUND",
  REFUND_REVERSAL: "REVERSAL",
  EXPIRE: "EXPIRE",
};

export function reasonOf(kind: EntryKind): BalanceChangeReason {
  return REASON_OF_KIND[kind];
}

/** One committed change of a user's balance as the live module fans it out, or a snapshot. */
export interface BalanceChange {
  readonly userId: string;
  readonly balance: number;
  /** Tokens pinned by holds after the change (0 until holds exist). */
  readonly held: number;
  readonly delta: number;
  readonly version: number;
  readonly lastUpdated: Date;
  /** Null for a snapshot (the first event, or a re-sync after the listener reconnected). */
  readonly entryId: number | null;
  /** The entry's kind; null for a snapshot, or when the notification did not carry it. */
  readonly kind: EntryKind | null;
  /**
   * The user's expiring tokens, read once per change by the instance that delivers it; absent when
   * that read failed, and then read again by whoever asks for the field.
   */
  readonly expiring?: readonly ExpiringTokens[] | undefined;
}
