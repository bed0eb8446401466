import { MAX_USER_ID_LENGTH } from "../../db/schema.js";
import { type RevenuecatEvent, resolveUserId, storeTransactionRef } from "./revenuecat.event.js";

/** What one RevenueCat event means for the ledger; the purchases service carries it out. */
export type Decision =
  | { readonly action: "ignore"; readonly reason: string }
  | { readonly action: "fail"; readonly reason: string }
  | { readonly action: "unmapped"; readonly reason: string; readonly userId: string }
  | { readonly action: "credit"; readonly userId: string; readonly tokens: number; readonly storeRef: string }
  | { readonly action: "refund"; readonly storeRef: string | null }
  | { readonly action: "reverse"; readonly storeRef: string | null };

export interface PurchasePolicyConfig {
  /** Product id → tokens. */
  readonly productTokenMap: Readonly<Record<string, number>>;
  /** Purchase environments that credit (PRODUCTION, SANDBOX). */
  readonly environments: readonly string[];
}

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
 * event type (credit, refund, reversal, or nothing), then for a credit the product's tokens.
 */
export function decide(event: RevenuecatEvent, config: PurchasePolicyConfig): Decision {
  if (event.type === "TEST") return ignore("test event from the RevenueCat dashboard");
  const environment = (event.environment ?? "PRODUCTION").toUpperCase();
  if (!config.environments.includes(environment)) return ignore(`environment ${environment} is not accepted`);
  if (CREDIT_TYPES.has(event.type)) return decideCredit(event, config);
  if (isRefund(event)) return { action: "refund", storeRef: storeTransactionRef(event) };
  if (event.type === "REFUND_REVERSED") return { action: "reverse", storeRef: storeTransactionRef(event) };
  if (INFORMATIONAL_TYPES.has(event.type)) return ignore(`${event.type} moves no tokens`);
  return ignore(`unknown event type ${event.type}`);
}

function decideCredit(event: RevenuecatEvent, config: PurchasePolicyConfig): Decision {
  const userId = resolveUserId(event);
  if (!userId) return ignore("no app user id in the event");
  if (userId.length > MAX_USER_ID_LENGTH) {
    return {
      action: "fail",
      reason: `app user id is longer than ${MAX_USER_ID_LENGTH} characters; no balance can hold it`,
    };
  }
  const tokens = tokensForProduct(config.productTokenMap, event.product_id);
  if (tokens === null) {
    const reason = `product ${event.product_id ?? "(none)"} is not in PRODUCT_TOKEN_MAP`;
    return { action: "unmapped", reason, userId };
  }
  // Without a store transaction id the event itself is the reference: it credits once.
  const storeRef = storeTransactionRef(event) ?? `event:${event.id}`;
  return { action: "credit", userId, tokens, storeRef };
}

function ignore(reason: string): Decision {
  return { action: "ignore", reason };
}

/** A refund is a CANCELLATION by customer support, or any CANCELLATION with a negative price. */
export function isRefund(event: RevenuecatEvent): boolean {
  return (
    event.type === "CANCELLATION" &&
    (event.cancel_reason === "CUSTOMER_SUPPORT" || (typeof event.price === "number" && event.price < 0))
  );
}

/** How a product maps to tokens. Play ids look like `<subscription>:<base plan>`; the subscription id also matches. */
export function tokensForProduct(
  map: Readonly<Record<string, number>>,
  productId: string | null | undefined,
): number | null {
  if (!productId) return null;
  const exact = map[productId];
  if (exact !== undefined) return exact;
  const base = productId.split(":")[0];
  return base !== undefined && base !== productId ? (map[base] ?? null) : null;
}
