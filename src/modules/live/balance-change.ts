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
  "HOLD",
  "CAPTURE",
  "RELEASE",
  "HOLD_EXPIRED",
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

/** A change of held tokens that wrote no entry (entryId null, delta 0): a reserve, a release, an expiry. */
export const HOLD_CHANGE_KINDS = ["HOLD", "RELEASE", "HOLD_EXPIRED"] as const;
export type HoldChangeKind = (typeof HOLD_CHANGE_KINDS)[number];
export type ChangeKind = EntryKind | HoldChangeKind;

/**
 * A change's reason from its kind and hold: a hold's own kinds are their reasons, a SPEND entry that
 * names a hold is its CAPTURE, and any other entry keeps its kind's reason (an EXPIRE of a hold's
 * unused pins, from a lot that ended while held, stays EXPIRE, even with the hold named).
 */
export function reasonOf(kind: ChangeKind, holdId: string | null = null): BalanceChangeReason {
  if (kind === "HOLD" || kind === "RELEASE" || kind === "HOLD_EXPIRED") return kind;
  if (kind === "SPEND" && holdId !== null) return "CAPTURE";
  return REASON_OF_KIND[kind];
}

/** A snapshot is the balance as it is: no entry and no hold change behind it. */
export function isSnapshot(change: Pick<BalanceChange, "entryId" | "kind">): boolean {
  return change.entryId === null && change.kind === null;
}

/** One committed change of a user's balance as the live module fans it out, or a snapshot. */
export interface BalanceChange {
  readonly userId: string;
  readonly balance: number;
  /** Tokens set aside by holds after the change (0 until holds exist). */
  readonly held: number;
  readonly delta: number;
  readonly version: number;
  readonly lastUpdated: Date;
  /**
   * Null for a snapshot (the first event, or a re-sync after the listener reconnected), and for a
   * hold change that wrote no entry (kind HOLD, RELEASE or HOLD_EXPIRED).
   */
  readonly entryId: number | null;
  /** The entry's kind, or a hold change's; null for a snapshot, or when the notification did not carry it. */
  readonly kind: ChangeKind | null;
  /** The hold behind the change (a reserve, a capture's SPEND, a release, an expiry); null otherwise. */
  readonly holdId: string | null;
  /**
   * The user's expiring tokens, read once per change by the instance that delivers it; absent when
   * that read failed, and then read again by whoever asks for the field.
   */
  readonly expiring?: readonly ExpiringTokens[] | undefined;
}
