import { decideCredit, expiresWithPeriod } from "./credit-policy.js";
import { productEntry } from "./product-config.js";
import { type Decision, ignore, type PurchasePolicyConfig } from "./purchase-decision.js";
import { type RevenuecatEvent, storeTransactionRef } from "./revenuecat.event.js";

export { tokensForProduct } from "./product-config.js";
export type { Decision, LotTerms, PurchasePolicyConfig } from "./purchase-decision.js";

/** Purchase events that credit the product's tokens. Token packs arrive as NON_RENEWING_PURCHASE. */
const CREDIT_TYPES: ReadonlySet<string> = new Set(["INITIAL_PURCHASE", "RENEWAL", "NON_RENEWING_PURCHASE"]);

/** Event types RevenueCat documents that move no tokens. */
const INFORMATIONAL_TYPES: ReadonlySet<string> = new Set([
  "CANCELLATION",
  "UNCANCELLATION",
  "EXPIRATION",
  "BILLING_ISSUE",
  "PRODUCT_CHANGE",
  "SUBSCRIPTION_PAUSED",
  "SUBSCRIPTION_EXTENDED",
  "TEMPORARY_ENTITLEMENT_GRANT",
  "TRANSFER",
  "EXPERIMENT_ENROLLMENT",
  "INVOICE_ISSUANCE",
  "VIRTUAL_CURRENCY_TRANSACTION",
  "SUBSCRIBER_ALIAS",
]);

/**
 * The webhook's policy, top-down: the dashboard's test event, then the environment filter, then the
 * event type (credit, refund, reversal, a subscription lot's new end, or nothing), then for a credit
 * the product's tokens (credit-policy.ts).
 */
export function decide(event: RevenuecatEvent, config: PurchasePolicyConfig): Decision {
  if (event.type === "TEST") return ignore("test event from the RevenueCat dashboard");
  const environment = (event.environment ?? "PRODUCTION").toUpperCase();
  if (!config.environments.includes(environment)) return ignore(`environment ${environment} is not accepted`);
  if (CREDIT_TYPES.has(event.type)) return decideCredit(event, config);
  if (isRefund(event)) return { action: "refund", storeRef: storeTransactionRef(event) };
  if (event.type === "REFUND_REVERSED") return { action: "reverse", storeRef: storeTransactionRef(event) };
  if (event.type === "SUBSCRIPTION_EXTENDED" || event.type === "EXPIRATION")
    return decideLotEnd(event, config);
  if (INFORMATIONAL_TYPES.has(event.type)) return ignore(`${event.type} moves no tokens`);
  return ignore(`unknown event type ${event.type}`);
}

/**
 * SUBSCRIPTION_EXTENDED moves the period lot's end later; an EXPIRATION ends it no later than the
 * subscription did (a no-op at its natural end, a cut when access was revoked early). Only lots of
 * subscription entries that expire have an end to move.
 */
function decideLotEnd(event: RevenuecatEvent, config: PurchasePolicyConfig): Decision {
  const match = productEntry(config.productTokenMap, event.product_id);
  const storeRef = storeTransactionRef(event);
  if (!expiresWithPeriod(match) || !storeRef || typeof event.expiration_at_ms !== "number") {
    return ignore(`${event.type} moves no tokens`);
  }
  const expiresAt = new Date(event.expiration_at_ms).toISOString();
  return event.type === "SUBSCRIPTION_EXTENDED"
    ? { action: "extend", storeRef, expiresAt }
    : { action: "cut", storeRef, expiresAt };
}

/** A refund is a CANCELLATION by customer support, or any CANCELLATION with a negative price. */
export function isRefund(event: RevenuecatEvent): boolean {
  return (
    event.type === "CANCELLATION" &&
    (event.cancel_reason === "CUSTOMER_SUPPORT" || (typeof event.price === "number" && event.price < 0))
  );
}
