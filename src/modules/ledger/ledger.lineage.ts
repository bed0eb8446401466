import type { LedgerEntry } from "./ledger.queries.js";

/**
 * Where a ledger entry came from, read from what the entry itself records (its kind, metadata and
 * external reference): the purchase and store transaction behind a credit, what a refund took and
 * what it could not, the import a legacy balance came from, the operator and reason of a grant or
 * adjustment. A support agent reads `story`; the other fields let a console link and filter.
 */
export interface EntryLineage {
  /** One sentence a person can read, such as "Refund of 100 tokens: 40 taken back, 60 short". */
  readonly story: string;
  /** The operator who granted, adjusted or transferred, from the entry's metadata. */
  readonly actor: string | null;
  /** The operator's reason (the entry's description) for grants, adjustments and transfers. */
  readonly reason: string | null;
  /** The RevenueCat event that wrote the entry, for store entries. */
  readonly eventId: string | null;
  readonly productId: string | null;
  readonly store: string | null;
  readonly storeTransactionId: string | null;
  /** For a refund: the tokens the purchase had credited. */
  readonly refundedTokens: number | null;
  /** For a refund: the tokens the balance could give back (the entry's amount, as a positive number). */
  readonly recoveredTokens: number | null;
  /** For a refund: the tokens already spent, which a balance never below 0 could not take back. */
  readonly shortfallTokens: number | null;
  /** The entry this one answers to: a refund's purchase, a reversal's refund. */
  readonly relatedEntryId: number | null;
  /** For a legacy import: the customer and where the balance came from. */
  readonly legacyCustomerId: string | null;
}

const text = (value: unknown): string | null => (typeof value === "string" && value !== "" ? value : null);
const whole = (value: unknown): number | null =>
  typeof value === "number" && Number.isSafeInteger(value) ? value : null;

export function lineageOf(entry: LedgerEntry): EntryLineage {
  const meta = entry.metadata ?? {};
  const base: EntryLineage = {
    story: entry.description ?? entry.kind,
    actor: text(meta.grantedBy) ?? text(meta.adjustedBy) ?? text(meta.transferredBy),
    reason: null,
    eventId: text(meta.eventId),
    productId: text(meta.productId),
    store: text(meta.store),
    storeTransactionId: text(meta.transactionId),
    refundedTokens: null,
    recoveredTokens: null,
    shortfallTokens: null,
    relatedEntryId: whole(meta.purchaseEntryId) ?? whole(meta.refundEntryId),
    legacyCustomerId: null,
  };
  return { ...base, ...specifics(entry, base, meta) };
}

/** The kind-specific fields and the story sentence. */
function specifics(
  entry: LedgerEntry,
  base: EntryLineage,
  meta: Record<string, unknown>,
): Partial<EntryLineage> {
  const tokens = `${Math.abs(entry.amount)} tokens`;
  const where = [
    base.productId,
    base.store && `on ${base.store}`,
    base.storeTransactionId && `transaction ${base.storeTransactionId}`,
  ]
    .filter(Boolean)
    .join(" ");
  const by = base.actor ? ` by ${base.actor}` : "";
  switch (entry.kind) {
    case "PURCHASE":
      return { story: `Purchase of ${where || "a product"} credited ${tokens}` };
    case "REFUND": {
      const refunded = whole(meta.refundedTokens) ?? Math.abs(entry.amount);
      const recovered = Math.abs(entry.amount);
      const shortfall = Math.max(0, refunded - recovered);
      const short = shortfall > 0 ? `; ${shortfall} were already spent and could not be taken back` : "";
      return {
        refundedTokens: refunded,
        recoveredTokens: recovered,
        shortfallTokens: shortfall,
        story: `Refund of ${where || "a purchase"}: the purchase gave ${refunded}, ${recovered} taken back${short}`,
      };
    }
    case "REFUND_REVERSAL":
      return { story: `Refund reversed for ${where || "a purchase"}: ${tokens} given back` };
    case "LEGACY_IMPORT": {
      const customer = text(meta.customerId);
      const source = text(meta.source);
      return {
        legacyCustomerId: customer,
        story: `Legacy balance of ${tokens} imported${customer ? ` for customer ${customer}` : ""}${source ? ` from ${source}` : ""}`,
      };
    }
    case "GRANT":
      return {
        reason: entry.description,
        story: `Grant of ${tokens}${by}: ${entry.description ?? "no reason"}`,
      };
    case "ADJUSTMENT": {
      const way = entry.amount < 0 ? "down" : "up";
      return {
        reason: entry.description,
        story: `Adjusted ${way} ${tokens}${by}: ${entry.description ?? ""}`,
      };
    }
    case "TRANSFER": {
      const way = entry.amount < 0 ? "out" : "in";
      return {
        reason: entry.description,
        story: `Transfer ${way} of ${tokens}${by}: ${entry.description ?? ""}`,
      };
    }
    case "SPEND":
      return { story: `Spent ${tokens}${entry.description ? ` on ${entry.description}` : ""}` };
    case "EXPIRE":
      return { story: `${tokens} expired unused${entry.description ? `: ${entry.description}` : ""}` };
  }
}
