import { isAnonymous } from "../purchases/revenuecat.event.js";

/**
 * One store transaction as RevenueCat knows it, from API v2 or a Scheduled Data Export, normalised
 * to what a webhook delivery carries: stores and environments upper case (`APP_STORE`, `PRODUCTION`;
 * v2 and the export write them lower case), the store's own product id (v2's `product_id` is
 * RevenueCat's internal id, mapped through its products list before this), and our user id.
 */
export interface UpstreamPurchase {
  /** Our user id: the customer asked for (API), or the export's non-anonymous app user id. */
  readonly userId: string;
  /** Upper case, as in webhooks: APP_STORE, PLAY_STORE, STRIPE, PROMOTIONAL... */
  readonly store: string;
  /** The store's transaction id (the webhook's `transaction_id`); null when the store gave none. */
  readonly transactionId: string | null;
  /** The store's product identifier (the key of PRODUCT_TOKEN_MAP); null when it could not be mapped. */
  readonly productId: string | null;
  readonly environment: "PRODUCTION" | "SANDBOX";
  /** RevenueCat says the transaction was refunded (v2 `status: refunded`, export `refunded_at`). */
  readonly refunded: boolean;
  /** The webhook event type that would have credited it. */
  readonly type: "NON_RENEWING_PURCHASE" | "INITIAL_PURCHASE" | "RENEWAL";
  readonly purchasedAtMs: number | null;
  /** A subscription period's end, when known. */
  readonly expirationAtMs: number | null;
  /** `PURCHASED` or `FAMILY_SHARED`. */
  readonly ownership: string;
  /** Where it was read: `v2:<RevenueCat purchase or subscription id>` or `export:<line>`. */
  readonly source: string;
}

/** Upper case, as webhooks spell stores and environments. */
export function upper(value: string | null | undefined): string {
  return (value ?? "").trim().toUpperCase();
}

/** The ledger's reference for the transaction, exactly as the webhook path builds it. */
export function storeRefOf(purchase: UpstreamPurchase): string | null {
  return purchase.transactionId ? `${purchase.store}:${purchase.transactionId}` : null;
}

/**
 * Of the ids RevenueCat lists for a customer, ours: the first that is not anonymous, as the webhook
 * resolves `app_user_id` and its aliases; else the first id (an anonymous customer).
 */
export function ourUserId(...ids: (string | null | undefined)[]): string | null {
  const present = ids.filter((id): id is string => typeof id === "string" && id !== "");
  return present.find((id) => !isAnonymous(id)) ?? present[0] ?? null;
}

/** Milliseconds since the epoch from v2 (milliseconds) or the export (ISO text or seconds). */
export function timeMs(value: unknown): number | null {
  if (typeof value === "number" && Number.isFinite(value)) return value;
  if (typeof value !== "string" || value.trim() === "") return null;
  const number = Number(value);
  if (Number.isFinite(number)) return number < 1e11 ? number * 1000 : number;
  const parsed = Date.parse(
    value.includes("T") || value.endsWith("Z") ? value : `${value.replace(" ", "T")}Z`,
  );
  return Number.isNaN(parsed) ? null : parsed;
}
