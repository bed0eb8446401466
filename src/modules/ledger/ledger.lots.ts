import { and, eq, isNotNull } from "drizzle-orm";
import type { Executor } from "../../db/client.js";
import { ledgerEntriesTable, lotsTable } from "../../db/schema.js";
import { written } from "./ledger.outcomes.js";
import { findByExternalRef, type LedgerEntry } from "./ledger.queries.js";
import type { ChangeOutcome, ChangeRequest } from "./ledger.statements.js";
import type {
  ExpiryResult,
  LotEndChange,
  LotEndResult,
  PurchaseRefund,
  RefundResult,
} from "./ledger.types.js";

/**
 * The ledger's operations on lots (issue 18), each one request to ledger_apply (the rules are in
 * its contract, src/modules/ledger/sql/ledger_apply.sql): a refund that takes from the refunded
 * purchase's own lot first, an extension or a cut of a lot's end, and the expiry of users' due lots
 * for the sweeper. The service (ledger.service.ts) gives each its way to apply a request.
 */
type Apply = (request: ChangeRequest) => Promise<ChangeOutcome>;

/** A refund's share of the purchase: (0, 1]; anything else (unknown prices) counts as all of it. */
export function refundRatio(ratio: number | undefined): number {
  return ratio !== undefined && Number.isFinite(ratio) && ratio > 0 && ratio < 1 ? ratio : 1;
}

/** The entry that credited a store transaction: its PURCHASE, or the entry that opened its lot. */
async function creditOf(executor: Executor, storeRef: string): Promise<LedgerEntry | null> {
  const purchase = await findByExternalRef(executor, "PURCHASE", storeRef);
  if (purchase) return purchase;
  const [row] = await executor
    .select({ entry: ledgerEntriesTable })
    .from(lotsTable)
    .innerJoin(ledgerEntriesTable, eq(ledgerEntriesTable.id, lotsTable.entryId))
    .where(and(eq(lotsTable.sourceRef, storeRef), isNotNull(lotsTable.entryId)))
    .limit(1);
  if (!row) return null;
  const { requestHash: _hash, ...entry } = row.entry;
  return entry;
}

/**
 * Takes back a purchase's tokens (§B6): ceil(granted × ratio), from its own lot first; its expired
 * part counts as returned; the rest from the owner's other lots, soonest-expiring first, never below
 * 0. Once per store transaction; it hits the lot's owner.
 */
export async function refundPurchase(
  executor: Executor,
  apply: Apply,
  refund: PurchaseRefund,
): Promise<RefundResult> {
  const purchase = await creditOf(executor, refund.storeRef);
  if (!purchase) return { status: "no-purchase" };
  const ratio = refundRatio(refund.ratio);
  const request: ChangeRequest = {
    userId: purchase.userId,
    delta: -purchase.amount,
    kind: "REFUND",
    op: "refund",
    lot: { ref: refund.storeRef },
    ratio,
    description: `Refund of ${purchase.description ?? refund.storeRef}`,
    metadata: {
      ...refund.metadata,
      refundedTokens: purchase.amount,
      purchaseEntryId: purchase.id,
      ...(ratio < 1 ? { ratio } : {}),
    },
    externalRef: refund.storeRef,
  };
  const outcome = await apply(request);
  if (outcome.status === "duplicate") return { status: "duplicate", entry: outcome.entry };
  const { entry } = written(outcome, request);
  const figure = (name: string) => Number(entry.metadata?.[name] ?? 0);
  return {
    status: "refunded",
    entry,
    purchase,
    recovered: -entry.amount,
    shortfall: figure("shortfall"),
    target: figure("target"),
    fromLot: figure("fromLot"),
    alreadyExpired: figure("alreadyExpired"),
    fromOthers: figure("fromOthers"),
  };
}

/** Moves a lot's end: later (`extend`, SUBSCRIPTION_EXTENDED) or earlier (`cut`, an early EXPIRATION). */
export async function changeLotEnd(
  apply: Apply,
  op: "extend" | "cut",
  change: LotEndChange,
): Promise<LotEndResult> {
  // The lot's owner is found by ledger_apply from the lot itself.
  const outcome = await apply({
    userId: "",
    delta: 0,
    kind: "EXPIRE",
    description: null,
    op,
    lot: { ref: change.storeRef, expiresAt: change.expiresAt },
  });
  switch (outcome.status) {
    case "lot_changed":
      return { status: "changed", expired: outcome.expired, balance: outcome.available };
    case "unchanged":
      return { status: "unchanged", expired: 0, balance: outcome.available };
    case "no_lot":
      return { status: "no-lot", expired: 0, balance: 0 };
    default:
      throw new Error(`ledger_apply answered ${outcome.status} to ${op}`);
  }
}

/** Expires the due lots of each user (the sweeper's request); how many tokens each lost. */
export function expireDue(apply: Apply, userIds: readonly string[]): Promise<ExpiryResult[]> {
  return Promise.all(
    [...new Set(userIds)].map(async (userId) => {
      const outcome = await apply({ userId, delta: 0, kind: "EXPIRE", description: null, op: "expire" });
      if (outcome.status !== "expired") throw new Error(`ledger_apply answered ${outcome.status} to expire`);
      return { userId, expired: outcome.expired, balance: outcome.available };
    }),
  );
}
