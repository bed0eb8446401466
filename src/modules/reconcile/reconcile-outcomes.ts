import type { StoreRefState } from "../ledger/ledger.reconcile-reads.js";
import { type PurchasePolicyConfig, tokensForProduct } from "../purchases/purchase.policy.js";
import { storeRefOf, type UpstreamPurchase } from "./upstream-purchase.js";

/**
 * What reconciling found for one store transaction (or customer). docs/reconcile.md explains each;
 * `credited` and `clawed_back` are the only outcomes that wrote anything.
 */
export const RECONCILE_OUTCOMES = [
  /** Missing here, now credited through the webhook's path (--apply). */
  "credited",
  /** Missing here; a dry run, so not credited. */
  "missing_credit",
  "already_credited",
  /** Refunded in RevenueCat, credited here, and not taken back (a refund webhook was missed). */
  "refunded_not_clawed_back",
  /** The same, now taken back through the webhook's refund path (--apply --refunds). */
  "clawed_back",
  "already_refunded",
  /** Refunded in RevenueCat before it was ever credited here: nothing to credit or take back. */
  "refunded_before_credit",
  /** Younger than the safety margin: RevenueCat may still be delivering its webhook. */
  "pending_delivery",
  "unknown_product",
  "sandbox",
  /** Never credited automatically: promotional grants, no store transaction id, family sharing. */
  "not_creditable",
  /** We credited it, but RevenueCat does not list it for the customer (forged or test data?). */
  "not_in_revenuecat",
  /** RevenueCat has no such customer (404), and we credited none of theirs: nothing to do. */
  "unknown_customer",
  "could_not_be_read",
  /** Applying failed (the balance limit, for one): recorded in the inbox for an operator. */
  "failed",
] as const;
export type ReconcileOutcome = (typeof RECONCILE_OUTCOMES)[number];

/** Outcomes that mean the run could not finish its job: the command exits 3. */
export const INCOMPLETE_OUTCOMES: readonly ReconcileOutcome[] = ["could_not_be_read", "failed"];

/** What to do with one upstream transaction, before anything is written. */
export type Verdict =
  | { readonly outcome: ReconcileOutcome; readonly detail: string; readonly tokens?: number }
  | { readonly action: "credit"; readonly tokens: number; readonly storeRef: string }
  | { readonly action: "refund"; readonly storeRef: string; readonly tokens: number };

export interface Judgement {
  readonly policy: PurchasePolicyConfig;
  readonly now: number;
  /** Purchases younger than this are `pending_delivery`, not missing. */
  readonly marginMs: number;
}

/**
 * Judges one transaction against what the ledger holds for it, the way a webhook delivery would be
 * judged: the environment filter, then what cannot be credited, then the ledger's own state.
 */
export function judge(
  purchase: UpstreamPurchase,
  state: StoreRefState | undefined,
  { policy, now, marginMs }: Judgement,
): Verdict {
  if (!policy.environments.includes(purchase.environment)) {
    return { outcome: "sandbox", detail: `environment ${purchase.environment} is not accepted` };
  }
  const storeRef = storeRefOf(purchase);
  if (!storeRef) return { outcome: "not_creditable", detail: "no store transaction id" };
  if (purchase.store === "PROMOTIONAL") return { outcome: "not_creditable", detail: "a promotional grant" };
  if (purchase.ownership === "FAMILY_SHARED") return { outcome: "not_creditable", detail: "family shared" };
  const credited = state?.purchase;
  if (credited) {
    const whose = credited.userId === purchase.userId ? "" : ` (credited to ${credited.userId})`;
    const tokens = credited.tokens;
    if (!purchase.refunded) {
      // Refunded here but owned upstream: a REFUND_REVERSED may have been missed; an operator decides.
      const refundedHere = state.refunded ? "; refunded here, not in RevenueCat" : "";
      return {
        outcome: "already_credited",
        detail: `entry ${credited.entryId}${whose}${refundedHere}`,
        tokens,
      };
    }
    if (state.refunded)
      return { outcome: "already_refunded", detail: `entry ${credited.entryId}${whose}`, tokens };
    return { action: "refund", storeRef, tokens };
  }
  if (purchase.refunded)
    return { outcome: "refunded_before_credit", detail: "refunded upstream, never credited here" };
  const tokens = tokensForProduct(policy.productTokenMap, purchase.productId);
  if (tokens === null) {
    const product = purchase.productId ?? "(not in RevenueCat's products list)";
    return { outcome: "unknown_product", detail: `product ${product} is not in PRODUCT_TOKEN_MAP` };
  }
  if (purchase.purchasedAtMs !== null && purchase.purchasedAtMs > now - marginMs) {
    return { outcome: "pending_delivery", detail: "purchased within the safety margin", tokens };
  }
  return { action: "credit", tokens, storeRef };
}
