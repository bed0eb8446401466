import { and, gte, inArray } from "drizzle-orm";
import type { Executor } from "../../db/client.js";
import { ledgerEntriesTable } from "../../db/schema.js";

/**
 * The reads `npm run reconcile` makes of the ledger: what became of store transactions here, which
 * store transactions a user was credited for, and who had entries lately. Read-only; crediting goes
 * through the purchases service like a webhook delivery.
 */

/** What the ledger holds for one store transaction (`<STORE>:<transaction id>`). */
export interface StoreRefState {
  /** The PURCHASE entry that credited it, if any. */
  readonly purchase: { readonly userId: string; readonly entryId: number; readonly tokens: number } | null;
  /** Whether a REFUND entry took it back, and no REFUND_REVERSAL gave it again. */
  readonly refunded: boolean;
}

/** Refs per query: a bounded parameter list, however many refs a run checks. */
const CHUNK = 2_000;

/** What the ledger holds for each of these store transactions; refs it has never seen are absent. */
export async function storeRefStates(
  db: Executor,
  refs: readonly string[],
): Promise<Map<string, StoreRefState>> {
  const states = new Map<string, StoreRefState>();
  for (let start = 0; start < refs.length; start += CHUNK) {
    const rows = await db
      .select({
        id: ledgerEntriesTable.id,
        userId: ledgerEntriesTable.userId,
        kind: ledgerEntriesTable.kind,
        amount: ledgerEntriesTable.amount,
        ref: ledgerEntriesTable.externalRef,
      })
      .from(ledgerEntriesTable)
      .where(
        and(
          inArray(ledgerEntriesTable.kind, ["PURCHASE", "REFUND", "REFUND_REVERSAL"]),
          inArray(ledgerEntriesTable.externalRef, refs.slice(start, start + CHUNK) as string[]),
        ),
      );
    const found = new Map<string, { purchase: StoreRefState["purchase"]; refunds: number }>();
    for (const row of rows) {
      const ref = row.ref as string;
      const state = found.get(ref) ?? { purchase: null, refunds: 0 };
      if (row.kind === "PURCHASE")
        state.purchase = { userId: row.userId, entryId: row.id, tokens: row.amount };
      else state.refunds += row.kind === "REFUND" ? 1 : -1;
      found.set(ref, state);
    }
    for (const [ref, state] of found)
      states.set(ref, { purchase: state.purchase, refunded: state.refunds > 0 });
  }
  return states;
}

/** The store transactions (external refs) each of these users was credited a purchase for. */
export async function purchaseRefsOf(
  db: Executor,
  userIds: readonly string[],
): Promise<Map<string, string[]>> {
  const refs = new Map<string, string[]>();
  if (userIds.length === 0) return refs;
  const rows = await db
    .select({ userId: ledgerEntriesTable.userId, ref: ledgerEntriesTable.externalRef })
    .from(ledgerEntriesTable)
    .where(
      and(inArray(ledgerEntriesTable.userId, [...userIds]), inArray(ledgerEntriesTable.kind, ["PURCHASE"])),
    );
  for (const row of rows) {
    if (row.ref === null) continue;
    refs.set(row.userId, [...(refs.get(row.userId) ?? []), row.ref]);
  }
  return refs;
}

/** Users with any ledger entry created at or after `since`. */
export async function usersWithEntriesSince(db: Executor, since: Date): Promise<string[]> {
  const rows = await db
    .select({ userId: ledgerEntriesTable.userId })
    .from(ledgerEntriesTable)
    .where(gte(ledgerEntriesTable.createdAt, since))
    .groupBy(ledgerEntriesTable.userId);
  return rows.map((row) => row.userId);
}
