import type { SubscriptionGrant } from "../../config-products.js";
import { MAX_USER_ID_LENGTH } from "../../db/schema.js";
import { type ProductMatch, productEntry } from "./product-config.js";
import { type Decision, ignore, type LotTerms, type PurchasePolicyConfig } from "./purchase-decision.js";
import { type RevenuecatEvent, resolveUserId, storeTransactionRef } from "./revenuecat.event.js";

/**
 * What a purchase event credits (INITIAL_PURCHASE, RENEWAL, NON_RENEWING_PURCHASE), top-down: whose
 * tokens, what RevenueCat granted that is not a purchase (family sharing, promotional grants, an
 * unpaid Stripe renewal), the product's entry, then for a subscription entry the period's lot
 * (docs/revenuecat.md, "Subscription credits").
 */
export function decideCredit(event: RevenuecatEvent, config: PurchasePolicyConfig): Decision {
  const userId = resolveUserId(event);
  if (!userId) return ignore("no app user id in the event");
  if (userId.length > MAX_USER_ID_LENGTH) {
    return {
      action: "fail",
      reason: `app user id is longer than ${MAX_USER_ID_LENGTH} characters; no balance can hold it`,
    };
  }
  const notBought = notAPurchase(event, config);
  if (notBought) return ignore(notBought);
  const match = productEntry(config.productTokenMap, event.product_id);
  if (match === null) {
    const reason = `product ${event.product_id ?? "(none)"} is not in PRODUCT_TOKEN_MAP`;
    return { action: "unmapped", reason, userId };
  }
  // Without a store transaction id the event itself is the reference: it credits once.
  const storeRef = storeTransactionRef(event) ?? `event:${event.id}`;
  // A one-time purchase never expires (App Review 3.1.1), whatever its entry says.
  if (match.kind === "pack" || event.type === "NON_RENEWING_PURCHASE") {
    const tokens = match.kind === "pack" ? match.tokens : match.grant.tokens;
    return { action: "credit", userId, tokens, storeRef };
  }
  return decidePeriod(event, config, match.grant, { userId, storeRef });
}

/** Why RevenueCat's event grants nothing though it looks like a purchase; null for a purchase. */
function notAPurchase(event: RevenuecatEvent, config: PurchasePolicyConfig): string | null {
  if (event.is_family_share === true && !config.grantFamilyShare) {
    return "shared through Family Sharing: the member bought nothing (SUBSCRIPTION_GRANT_FAMILY_SHARE)";
  }
  const promotional = event.store === "PROMOTIONAL" || event.period_type === "PROMOTIONAL";
  if (promotional && !config.grantPromotional) {
    return "a promotional grant from RevenueCat, not a purchase (SUBSCRIPTION_GRANT_PROMOTIONAL)";
  }
  // While a Stripe invoice is past due, RevenueCat keeps sending RENEWAL with a zero price.
  if (
    event.store === "STRIPE" &&
    event.type === "RENEWAL" &&
    event.price === 0 &&
    (event.period_type ?? "NORMAL") === "NORMAL"
  ) {
    return "a zero-price Stripe renewal: the invoice is unpaid, the next paid renewal grants";
  }
  return null;
}

/**
 * One subscription period (or trial) opens one lot of its grant, keyed by the store transaction,
 * from the later of its purchase and the event (a Stripe immediate change carries the original
 * purchase time) until `expiration_at_ms`. A period processed after its end is born expired: the
 * ledger writes its PURCHASE and an EXPIRE of the same amount.
 */
function decidePeriod(
  event: RevenuecatEvent,
  config: PurchasePolicyConfig,
  grant: SubscriptionGrant,
  credit: { userId: string; storeRef: string },
): Decision {
  const product = event.product_id as string;
  const trial = event.period_type === "TRIAL";
  const tokens = trial
    ? grant.trialTokens
    : event.period_type === "INTRO"
      ? (grant.introTokens ?? grant.tokens)
      : grant.tokens;
  if (tokens === 0) return ignore(`a ${trial ? "trial" : "period"} of ${product} grants 0 tokens`);
  const end = typeof event.expiration_at_ms === "number" ? event.expiration_at_ms : null;
  const expiring = grant.expires === "period_end";
  if (expiring && end === null) {
    return {
      action: "fail",
      reason: `no expiration_at_ms: the period of ${product} has no end to expire at`,
    };
  }
  const started = Math.max(event.purchased_at_ms ?? 0, event.event_timestamp_ms ?? 0) || Date.now();
  const startsAt = end === null ? started : Math.min(started, end);
  const lot: LotTerms = {
    source: trial ? "trial" : "period",
    chain: chainOf(event, grant, credit.storeRef),
    product,
    startsAt: new Date(startsAt).toISOString(),
    expiresAt: expiring && end !== null ? new Date(end).toISOString() : null,
    rollover: grant.rollover && !trial ? { cap: grant.rollover.cap } : null,
    supersede: (config.onUpgrade ?? "expire") === "expire",
  };
  return { action: "credit", ...credit, tokens, lot };
}

/**
 * The subscription a period belongs to: the product's credit group when configured (a Play product
 * change starts a new purchase, so its transaction chain breaks), else the store's original
 * transaction.
 */
function chainOf(event: RevenuecatEvent, grant: SubscriptionGrant, storeRef: string): string {
  if (grant.creditGroup) return `group:${grant.creditGroup}`;
  const original = event.original_transaction_id ?? event.transaction_id;
  return original ? `${event.store ?? "UNKNOWN"}:${original}` : storeRef;
}

/** A subscription entry whose periods expire: its lots have an end that EXPIRATION and SUBSCRIPTION_EXTENDED move. */
export function expiresWithPeriod(match: ProductMatch | null): boolean {
  return match?.kind === "subscription" && match.grant.expires === "period_end";
}
