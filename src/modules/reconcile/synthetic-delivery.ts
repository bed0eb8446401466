import type { DeliveryResult } from "../purchases/purchases.service.js";
import type { RevenuecatEvent } from "../purchases/revenuecat.event.js";
import type { ReconcileOutcome } from "./reconcile-outcomes.js";
import type { UpstreamPurchase } from "./upstream-purchase.js";

/**
 * The deliveries reconciling makes: RevenueCat-shaped events that go through the webhook's own path
 * (the inbox claim, the store transaction's lock, the ledger's unique store reference). The event id
 * names the store transaction, so a second run, or a run beside another, is a duplicate at the claim;
 * the purchase's own webhook arriving later has another id but the same store reference, so it is a
 * duplicate at the ledger.
 */

/** `reconcile:<STORE>:<transaction id>`. */
export function creditEventId(storeRef: string): string {
  return `reconcile:${storeRef}`;
}

/** `reconcile-refund:<STORE>:<transaction id>`. */
export function refundEventId(storeRef: string): string {
  return `reconcile-refund:${storeRef}`;
}

export interface SyntheticDelivery {
  readonly rawBody: string;
  readonly event: RevenuecatEvent;
}

function delivery(event: RevenuecatEvent & Record<string, unknown>): SyntheticDelivery {
  return { rawBody: JSON.stringify({ api_version: "1.0", event }), event };
}

function common(purchase: UpstreamPurchase, now: number) {
  return {
    app_user_id: purchase.userId,
    original_app_user_id: purchase.userId,
    aliases: [purchase.userId],
    product_id: purchase.productId,
    store: purchase.store,
    transaction_id: purchase.transactionId,
    original_transaction_id: purchase.transactionId,
    environment: purchase.environment,
    event_timestamp_ms: now,
    /** Where the transaction was read, so an operator can tell a reconciled credit from a webhook's. */
    reconcile: { source: purchase.source },
  };
}

/** The purchase event whose webhook never arrived. */
export function creditDelivery(purchase: UpstreamPurchase, storeRef: string, now: number): SyntheticDelivery {
  return delivery({
    ...common(purchase, now),
    id: creditEventId(storeRef),
    type: purchase.type,
    period_type: "NORMAL",
    purchased_at_ms: purchase.purchasedAtMs,
    expiration_at_ms: purchase.expirationAtMs,
  });
}

/** A refund by customer support, as RevenueCat sends it: the webhook path takes the tokens back. */
export function refundDelivery(purchase: UpstreamPurchase, storeRef: string, now: number): SyntheticDelivery {
  return delivery({
    ...common(purchase, now),
    id: refundEventId(storeRef),
    type: "CANCELLATION",
    cancel_reason: "CUSTOMER_SUPPORT",
  });
}

/** What the webhook path's answer to a credit means here. */
export function creditOutcome(result: DeliveryResult): ReconcileOutcome {
  switch (result.outcome) {
    case "credited":
      return "credited";
    case "duplicate":
      return "already_credited";
    case "unmapped":
      return "unknown_product";
    case "held":
      return "refunded_before_credit";
    case "ignored":
      return "not_creditable";
    default:
      return "failed";
  }
}

/** What the webhook path's answer to a refund means here. */
export function refundOutcome(result: DeliveryResult): ReconcileOutcome {
  if (result.outcome === "refunded") return "clawed_back";
  if (result.outcome === "duplicate") return "already_refunded";
  return "failed";
}
