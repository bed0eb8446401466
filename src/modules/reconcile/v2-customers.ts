import { isStorableText } from "../../db/text.js";
import { type RevenuecatApi, RevenuecatApiError } from "../legacy/revenuecat-api.js";
import { timeMs, type UpstreamPurchase, upper } from "./upstream-purchase.js";

/**
 * Reads what RevenueCat's API v2 knows of our users, customer by customer: one-time purchases
 * (`GET …/customers/{id}/purchases`) and subscription periods (`…/customers/{id}/subscriptions`, then
 * each subscription's `…/transactions`), every list followed through `next_page`. The API client
 * paces the calls and honours 429/423; a customer RevenueCat does not know is a 404, never created.
 */

export type CustomerRead =
  | { readonly kind: "customer"; readonly userId: string; readonly purchases: UpstreamPurchase[] }
  | { readonly kind: "not-found"; readonly userId: string }
  | { readonly kind: "unreadable"; readonly id: string; readonly reason: string };

/** RevenueCat's product id → the store's product identifier. */
export type ProductMap = ReadonlyMap<string, string>;

interface V2Product {
  id: string;
  store_identifier?: string | null;
}

interface V2Purchase {
  id: string;
  product_id: string;
  purchased_at?: number | null;
  status?: string | null;
  environment?: string | null;
  store?: string | null;
  store_purchase_identifier?: string | null;
  ownership?: string | null;
}

interface V2Subscription {
  id: string;
  product_id: string;
  environment?: string | null;
  store?: string | null;
  store_subscription_identifier?: string | null;
  ownership?: string | null;
  current_period_ends_at?: number | null;
}

interface V2SubscriptionTransaction {
  id: string;
  purchased_at?: number | null;
  product_store_identifier?: string | null;
  expiration_date?: number | string | null;
}

/** The project's products, read once per run (their own budget: 60 requests a minute). */
export async function readProductMap(api: RevenuecatApi): Promise<ProductMap> {
  const products = (await api.list<V2Product>("/products?limit=100")) ?? [];
  return new Map(products.filter((p) => p.store_identifier).map((p) => [p.id, p.store_identifier as string]));
}

/** Everything one customer bought, or why it could not be read. */
export async function readCustomer(
  api: RevenuecatApi,
  products: ProductMap,
  userId: string,
): Promise<CustomerRead> {
  if (!isStorableText(userId) || userId.length > 255) {
    return { kind: "unreadable", id: userId, reason: "not a storable user id" };
  }
  const path = `/customers/${encodeURIComponent(userId)}`;
  try {
    const purchases = await api.list<V2Purchase>(`${path}/purchases?limit=100`);
    if (purchases === null) return { kind: "not-found", userId };
    const subscriptions = (await api.list<V2Subscription>(`${path}/subscriptions?limit=100`)) ?? [];
    const found = purchases.map((p) => fromPurchase(p, products, userId));
    for (const subscription of subscriptions) {
      found.push(...(await subscriptionPeriods(api, products, subscription, userId)));
    }
    return { kind: "customer", userId, purchases: found };
  } catch (error) {
    const reason = error instanceof RevenuecatApiError ? error.message : String(error);
    return { kind: "unreadable", id: userId, reason };
  }
}

/**
 * Reads customers a few at a time (the API client spaces the requests themselves), in the order
 * given, each id once.
 */
export async function* readCustomers(
  api: RevenuecatApi,
  products: ProductMap,
  userIds: Iterable<string> | AsyncIterable<string>,
  parallel = 4,
): AsyncGenerator<CustomerRead> {
  const seen = new Set<string>();
  let pending: Promise<CustomerRead>[] = [];
  for await (const userId of userIds) {
    if (seen.has(userId)) continue;
    seen.add(userId);
    pending.push(readCustomer(api, products, userId));
    if (pending.length >= parallel) {
      yield* await Promise.all(pending);
      pending = [];
    }
  }
  yield* await Promise.all(pending);
}

function fromPurchase(purchase: V2Purchase, products: ProductMap, userId: string): UpstreamPurchase {
  return {
    userId,
    store: upper(purchase.store),
    transactionId: purchase.store_purchase_identifier || null,
    productId: products.get(purchase.product_id) ?? null,
    environment: upper(purchase.environment) === "SANDBOX" ? "SANDBOX" : "PRODUCTION",
    refunded: purchase.status === "refunded",
    type: "NON_RENEWING_PURCHASE",
    purchasedAtMs: timeMs(purchase.purchased_at),
    expirationAtMs: null,
    ownership: upper(purchase.ownership) || "PURCHASED",
    source: `v2:${purchase.id}`,
  };
}

/**
 * Each period of a subscription as the store transaction that paid for it, oldest first (the first
 * is the INITIAL_PURCHASE, the rest RENEWALs). Where RevenueCat lists no transactions (stores other
 * than the App Store and Play), the latest period's `store_subscription_identifier` stands for it.
 * The transactions carry no refund flag: refunds of periods are not judged here.
 */
async function subscriptionPeriods(
  api: RevenuecatApi,
  products: ProductMap,
  subscription: V2Subscription,
  userId: string,
): Promise<UpstreamPurchase[]> {
  const path = `/subscriptions/${encodeURIComponent(subscription.id)}/transactions?limit=100`;
  const transactions = await api.list<V2SubscriptionTransaction>(path);
  const common = {
    userId,
    store: upper(subscription.store),
    environment: upper(subscription.environment) === "SANDBOX" ? "SANDBOX" : "PRODUCTION",
    refunded: false,
    ownership: upper(subscription.ownership) || "PURCHASED",
    source: `v2:${subscription.id}`,
  } as const;
  const productId = products.get(subscription.product_id) ?? null;
  if (transactions === null) {
    return [
      {
        ...common,
        transactionId: subscription.store_subscription_identifier || null,
        productId,
        type: "RENEWAL",
        purchasedAtMs: null,
        expirationAtMs: timeMs(subscription.current_period_ends_at),
      },
    ];
  }
  const sorted = [...transactions].sort((a, b) => (a.purchased_at ?? 0) - (b.purchased_at ?? 0));
  return sorted.map((transaction, index) => ({
    ...common,
    transactionId: transaction.id || null,
    productId: transaction.product_store_identifier || productId,
    type: index === 0 ? "INITIAL_PURCHASE" : "RENEWAL",
    purchasedAtMs: timeMs(transaction.purchased_at),
    expirationAtMs: timeMs(transaction.expiration_date),
  }));
}
