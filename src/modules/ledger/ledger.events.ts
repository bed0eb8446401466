/**
 * The ledger's announcement of a committed balance change. The ledger statements NOTIFY it inside
 * the writing transaction, so PostgreSQL delivers it only if and when that transaction commits; the
 * live module LISTENs and fans it out.
 */
export const BALANCE_CHANGED_CHANNEL = "token_balance_changed";

/**
 * One change in a NOTIFY payload, which is a JSON array of the changes one statement committed, in
 * order; the entry itself is loaded only when a subscriber asks for it. The live module checks each
 * one against its schema (src/modules/live/balance-notification.ts) before using it.
 */
export interface BalanceChangedMessage {
  readonly userId: string;
  readonly balance: number;
  readonly delta: number;
  readonly version: number;
  readonly entryId: number;
  readonly at: string;
  /** The entry's kind (issue 18; older payloads lack it). */
  readonly kind?: string;
  /** Tokens set aside by holds after the change (0 until holds exist; older payloads lack it). */
  readonly held?: number;
}
