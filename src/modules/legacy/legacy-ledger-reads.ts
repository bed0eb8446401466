import type { Executor } from "../../db/client.js";
import { importedCustomers, type PurchaseCredits, purchaseCreditsOf } from "../ledger/ledger.queries.js";

/** Which purchase credits count as "already credited" for the legacy import. */
export interface PurchaseWindow {
  /** Only purchases credited from this moment on (when the webhook went live); all when unset. */
  readonly since?: Date | undefined;
  /** Only purchases credited before this moment (the run's start unless given). */
  readonly until: Date;
}

/** What the ledger already knows about a chunk of legacy customers. */
export interface LedgerFacts {
  /** Customers whose legacy balance was imported, and when. */
  readonly imported: ReadonlyMap<string, Date>;
  /** Each user's purchase credits, in all and within the window. */
  readonly purchases: ReadonlyMap<string, PurchaseCredits>;
}

/** The ledger reads an import makes: straight from the database, or through a running server. */
export interface LegacyLedgerReads {
  facts(
    customerIds: readonly string[],
    userIds: readonly string[],
    window: PurchaseWindow,
  ): Promise<LedgerFacts>;
}

/** The reads, made on the database (the import's own connection, or the server's for a lookup). */
export async function ledgerFacts(
  db: Executor,
  customerIds: readonly string[],
  userIds: readonly string[],
  window: PurchaseWindow,
): Promise<LedgerFacts> {
  const [imported, purchases] = await Promise.all([
    importedCustomers(db, customerIds),
    purchaseCreditsOf(db, userIds, window),
  ]);
  return { imported, purchases };
}

export function databaseReads(db: Executor): LegacyLedgerReads {
  return { facts: (customerIds, userIds, window) => ledgerFacts(db, customerIds, userIds, window) };
}
