import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import pino from "pino";
import { queryRows } from "../../src/db/client.js";
import { getBalance } from "../../src/modules/ledger/ledger.queries.js";
import { createLedgerService } from "../../src/modules/ledger/ledger.service.js";
import { createRevenuecatApi } from "../../src/modules/legacy/revenuecat-api.js";
import type { PurchasePolicyConfig } from "../../src/modules/purchases/purchase.policy.js";
import {
  createPurchasesService,
  type PurchasesService,
} from "../../src/modules/purchases/purchases.service.js";
import {
  type ReconcileInput,
  type ReconcileItem,
  type ReconcileOptions,
  reconcile,
} from "../../src/modules/reconcile/reconcile.service.js";
import { readCustomers, readProductMap } from "../../src/modules/reconcile/v2-customers.js";
import type { TestApp } from "../helpers/app.js";
import type { FakePurchase, FakeRevenuecatApi } from "../helpers/fake-revenuecat-api.js";

/** RevenueCat's own product ids for the seed map's store products (v2 lists purchases by these). */
export const PRODUCTS = [
  { id: "prod_small", store_identifier: "token_pack_small", type: "consumable" },
  { id: "prod_large", store_identifier: "token_pack_large", type: "consumable" },
  { id: "prod_monthly", store_identifier: "pro_monthly", type: "subscription" },
  { id: "prod_new", store_identifier: "token_pack_not_in_the_map", type: "consumable" },
];

/** A store transaction id no other test uses. */
export function transactionId(): string {
  return `${Date.now()}${Math.floor(Math.random() * 1e9)}`;
}

/** An API v2 `Purchase` as RevenueCat documents it (lower-case store and environment). */
export function v2Purchase(customerId: string, overrides: Partial<FakePurchase> = {}): FakePurchase {
  return {
    object: "purchase",
    id: `purch${randomUUID().replaceAll("-", "").slice(0, 12)}`,
    customer_id: customerId,
    original_customer_id: customerId,
    product_id: "prod_small",
    purchased_at: Date.now() - 6 * 3_600_000,
    revenue_in_usd: { currency: "USD", gross: 0.99, commission: 0.15, tax: 0, proceeds: 0.84 },
    quantity: 1,
    status: "owned",
    presented_offering_id: null,
    entitlements: { object: "list", items: [] },
    environment: "production",
    store: "app_store",
    store_purchase_identifier: transactionId(),
    ownership: "purchased",
    country: "US",
    ...overrides,
  };
}

export interface Run {
  readonly items: ReconcileItem[];
  readonly counts: Record<string, number>;
}

/** Reconciles these customers through the fake API, in this process, on the test app's database. */
export async function reconcileCustomers(
  t: TestApp,
  fake: FakeRevenuecatApi,
  userIds: string[],
  options: Partial<ReconcileOptions> & { environments?: string[]; ratePerMinute?: number } = {},
): Promise<Run> {
  const api = createRevenuecatApi({
    baseUrl: fake.url,
    projectId: fake.projectId,
    apiKey: fake.apiKey,
    ratePerMinute: options.ratePerMinute ?? 60_000,
  });
  const products = await readProductMap(api);
  return run(t, readCustomers(api, products, userIds), options);
}

export async function run(
  t: TestApp,
  input: AsyncIterable<ReconcileInput>,
  options: Partial<ReconcileOptions> & { environments?: string[] } = {},
): Promise<Run> {
  const items: ReconcileItem[] = [];
  const policy = {
    productTokenMap: { token_pack_small: 100, token_pack_large: 1200, pro_monthly: 500 },
    environments: options.environments ?? ["PRODUCTION", "SANDBOX"],
  };
  const summary = await reconcile(
    {
      db: t.db.handle.db,
      purchases: purchasesOn(t, policy),
      policy,
      logger: pino({ level: "silent" }),
    },
    input,
    {
      apply: false,
      refunds: false,
      marginMs: 3 * 3_600_000,
      ...options,
      onItem: (item) => items.push(item),
    },
  );
  const counts = Object.fromEntries(Object.entries(summary.counts).filter(([, n]) => n > 0));
  return { items, counts };
}

export async function balanceOf(t: TestApp, userId: string): Promise<number> {
  return (await getBalance(t.db.handle.db, userId)).balance;
}

/** Ledger entries of one kind for a store transaction. */
export async function entriesFor(t: TestApp, storeRef: string, kind = "PURCHASE"): Promise<number> {
  const [row] = await queryRows<{ n: number }>(
    t.db.handle.db,
    sql`SELECT count(*)::int AS n FROM token_transactions WHERE kind = ${kind} AND external_ref = ${storeRef}`,
  );
  return row?.n ?? 0;
}

/** Inbox rows whose event id starts with `prefix`. */
export async function inboxRows(
  t: TestApp,
  prefix: string,
): Promise<{ event_id: string; outcome: string }[]> {
  return queryRows(
    t.db.handle.db,
    sql`SELECT event_id, outcome FROM revenuecat_events WHERE event_id LIKE ${`${prefix}%`} ORDER BY event_id`,
  );
}

/** Every row of the ledger and the inbox, counted: a dry run must leave both as they were. */
export async function rowCounts(t: TestApp): Promise<{ entries: number; events: number; balances: number }> {
  const [row] = await queryRows<{ entries: number; events: number; balances: number }>(
    t.db.handle.db,
    sql`SELECT (SELECT count(*)::int FROM token_transactions) AS entries,
               (SELECT count(*)::int FROM revenuecat_events) AS events,
               (SELECT coalesce(sum(balance), 0)::int FROM token_balances) AS balances`,
  );
  return row as { entries: number; events: number; balances: number };
}

/** The purchase path over the test app's database, as the service wires it, with the given policy. */
export function purchasesOn(t: TestApp, config: PurchasePolicyConfig): PurchasesService {
  const logger = pino({ level: "silent" });
  const database = t.db.handle;
  return createPurchasesService({
    database,
    ledger: createLedgerService({ database, logger }),
    logger,
    config,
  });
}
