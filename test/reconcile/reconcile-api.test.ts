import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newUserId, useTestApp } from "../helpers/app.js";
import { FakeRevenuecatApi } from "../helpers/fake-revenuecat-api.js";
import { deliver, fixture } from "../helpers/revenuecat.js";
import {
  balanceOf,
  entriesFor,
  inboxRows,
  PRODUCTS,
  reconcileCustomers,
  transactionId,
  v2Purchase,
} from "./helpers.js";

/**
 * Reconciling against RevenueCat's API v2 (a local fake answering the documented shapes, pages of
 * two, 429s and 404s): a purchase whose webhook never came is credited once, through the webhook's
 * own path, and everything else is reported as what it is.
 */
const t = useTestApp();
const fake = new FakeRevenuecatApi();
beforeAll(async () => {
  fake.products.push(...PRODUCTS);
  await fake.start();
});
afterAll(() => fake.stop());

/** A customer in the fake whose purchases RevenueCat lists. */
function customer(userId: string, purchases = [v2Purchase(userId)]) {
  fake.customers.set(userId, { attributes: {}, purchases });
  return purchases;
}

describe("reconcile through API v2", () => {
  it("a purchase whose webhook never came: a dry run writes nothing, --apply credits it once, its late webhook is a duplicate", async () => {
    const userId = newUserId("rc-missing");
    const [purchase] = customer(userId);
    const storeRef = `APP_STORE:${purchase?.store_purchase_identifier}`;

    const dry = await reconcileCustomers(t, fake, [userId]);
    expect(dry.counts).toEqual({ missing_credit: 1 });
    expect(dry.items[0]).toMatchObject({ userId, storeRef, productId: "token_pack_small", tokens: 100 });
    expect(await balanceOf(t, userId)).toBe(0);
    expect(await entriesFor(t, storeRef)).toBe(0);
    expect(await inboxRows(t, `reconcile:${storeRef}`)).toEqual([]);

    const applied = await reconcileCustomers(t, fake, [userId], { apply: true });
    expect(applied.counts).toEqual({ credited: 1 });
    expect(await balanceOf(t, userId)).toBe(100);
    expect(await inboxRows(t, `reconcile:${storeRef}`)).toEqual([
      { event_id: `reconcile:${storeRef}`, outcome: "credited" },
    ]);

    const again = await reconcileCustomers(t, fake, [userId], { apply: true });
    expect(again.counts).toEqual({ already_credited: 1 });

    const late = fixture("NON_RENEWING_PURCHASE__rc-docs", {
      app_user_id: userId,
      aliases: [userId],
      transaction_id: purchase?.store_purchase_identifier,
      original_transaction_id: purchase?.store_purchase_identifier,
      product_id: "token_pack_small",
    });
    const delivered = await deliver(t.url, late);
    expect(delivered.status).toBe(200);
    expect(delivered.body.outcome).toBe("duplicate");
    expect(await balanceOf(t, userId)).toBe(100);
    expect(await entriesFor(t, storeRef)).toBe(1);
  });

  it("two runs at once credit the purchase once", async () => {
    const userId = newUserId("rc-race");
    const [purchase] = customer(userId, [
      v2Purchase(userId, { store: "play_store", product_id: "prod_large" }),
    ]);
    const storeRef = `PLAY_STORE:${purchase?.store_purchase_identifier}`;
    const runs = await Promise.all(
      [1, 2, 3].map(() => reconcileCustomers(t, fake, [userId], { apply: true })),
    );
    const outcomes = runs.flatMap((r) => r.items.map((item) => item.outcome)).sort();
    expect(outcomes).toEqual(["already_credited", "already_credited", "credited"].sort());
    expect(await balanceOf(t, userId)).toBe(1200);
    expect(await entriesFor(t, storeRef)).toBe(1);
  });

  it("a refund the ledger missed is reported, and clawed back once only with --apply --refunds", async () => {
    const userId = newUserId("rc-refund");
    const txn = transactionId();
    const delivered = await deliver(
      t.url,
      fixture("NON_RENEWING_PURCHASE__rc-docs", {
        app_user_id: userId,
        aliases: [userId],
        transaction_id: txn,
        original_transaction_id: txn,
        product_id: "token_pack_small",
      }),
    );
    expect(delivered.body.outcome).toBe("credited");
    customer(userId, [v2Purchase(userId, { store_purchase_identifier: txn, status: "refunded" })]);
    const storeRef = `APP_STORE:${txn}`;

    for (const options of [{}, { apply: true }, { refunds: true }]) {
      const reported = await reconcileCustomers(t, fake, [userId], options);
      expect(reported.counts).toEqual({ refunded_not_clawed_back: 1 });
    }
    expect(await balanceOf(t, userId)).toBe(100);

    const [first, second] = await Promise.all([
      reconcileCustomers(t, fake, [userId], { apply: true, refunds: true }),
      reconcileCustomers(t, fake, [userId], { apply: true, refunds: true }),
    ]);
    const outcomes = [...(first?.items ?? []), ...(second?.items ?? [])].map((item) => item.outcome).sort();
    expect(outcomes).toEqual(["already_refunded", "clawed_back"]);
    expect(await balanceOf(t, userId)).toBe(0);
    expect(await entriesFor(t, storeRef, "REFUND")).toBe(1);
    const after = await reconcileCustomers(t, fake, [userId], { apply: true, refunds: true });
    expect(after.counts).toEqual({ already_refunded: 1 });
  });

  it("reads every page, maps RevenueCat's product ids to store ids, and reports what it cannot credit", async () => {
    const userId = newUserId("rc-mixed");
    const recent = Date.now() - 10 * 60_000;
    customer(userId, [
      v2Purchase(userId),
      v2Purchase(userId, { product_id: "prod_large", store: "play_store" }),
      v2Purchase(userId, { product_id: "prod_new" }),
      v2Purchase(userId, { product_id: "prod_unlisted" }),
      v2Purchase(userId, { environment: "sandbox" }),
      v2Purchase(userId, { store: "promotional" }),
      v2Purchase(userId, { ownership: "family_shared" }),
      v2Purchase(userId, { purchased_at: recent }),
      v2Purchase(userId, { status: "refunded" }),
    ]);
    const found = await reconcileCustomers(t, fake, [userId], { apply: true, environments: ["PRODUCTION"] });
    expect(found.counts).toEqual({
      credited: 2,
      unknown_product: 2,
      sandbox: 1,
      not_creditable: 2,
      pending_delivery: 1,
      refunded_before_credit: 1,
    });
    expect(found.items.find((item) => item.outcome === "unknown_product")?.detail).toContain(
      "token_pack_not_in_the_map",
    );
    expect(await balanceOf(t, userId)).toBe(1300);
    // Nine purchases at two a page: five requests for the purchases alone.
    const pages = fake.requests.filter((r) => r.path.includes(`${encodeURIComponent(userId)}/purchases`));
    expect(pages.length).toBeGreaterThanOrEqual(5);
  });

  it("credits each period of a subscription, from its store transactions", async () => {
    const userId = newUserId("rc-sub");
    const order = `GPA.${transactionId()}`;
    const start = Date.now() - 40 * 86_400_000;
    fake.customers.set(userId, {
      attributes: {},
      subscriptions: [
        {
          id: `sub_${order}`,
          customer_id: userId,
          product_id: "prod_monthly",
          store: "play_store",
          environment: "production",
          store_subscription_identifier: `${order}..0`,
          status: "active",
          gives_access: true,
          ownership: "purchased",
          starts_at: start,
          current_period_ends_at: start + 60 * 86_400_000,
          transactions: [0, 1].map((n) => ({
            id: n === 0 ? order : `${order}..${n - 1}`,
            purchased_at: start + n * 30 * 86_400_000,
            product_store_identifier: "pro_monthly",
            expiration_date: start + (n + 1) * 30 * 86_400_000,
          })),
        },
      ],
    });
    const found = await reconcileCustomers(t, fake, [userId], { apply: true });
    expect(found.counts).toEqual({ credited: 2 });
    expect(await balanceOf(t, userId)).toBe(1000);
    expect((await inboxRows(t, `reconcile:PLAY_STORE:${order}`)).map((row) => row.outcome)).toEqual([
      "credited",
      "credited",
    ]);
  });

  it("--max-credits stops crediting at its limit; the rest stay missing for the next run", async () => {
    const userId = newUserId("rc-guard");
    customer(userId, [v2Purchase(userId), v2Purchase(userId), v2Purchase(userId)]);
    const guarded = await reconcileCustomers(t, fake, [userId], { apply: true, maxCredits: 2 });
    expect(guarded.counts).toEqual({ credited: 2, missing_credit: 1 });
    expect(guarded.items.find((item) => item.outcome === "missing_credit")?.detail).toContain(
      "--max-credits",
    );
    expect(await balanceOf(t, userId)).toBe(200);
    const rest = await reconcileCustomers(t, fake, [userId], { apply: true });
    expect(rest.counts).toEqual({ credited: 1, already_credited: 2 });
  });

  it("follows next_page for an anonymous customer id ($RCAnonymousID:…) as given", async () => {
    const anonymous = `$RCAnonymousID:${transactionId()}abcdef`;
    customer(anonymous, [v2Purchase(anonymous), v2Purchase(anonymous), v2Purchase(anonymous)]);
    const found = await reconcileCustomers(t, fake, [anonymous], { apply: true });
    expect(found.counts).toEqual({ credited: 3 });
    expect(await balanceOf(t, anonymous)).toBe(300);
  });

  it("keeps under the configured rate while reading customers in parallel", async () => {
    const ids = [1, 2, 3, 4, 5].map(() => newUserId("rc-paced"));
    for (const id of ids) customer(id, [v2Purchase(id), v2Purchase(id), v2Purchase(id)]);
    const from = fake.requests.length;
    await reconcileCustomers(t, fake, ids, { ratePerMinute: 600 });
    const seen = fake.requests.slice(from);
    // Two pages of products, then per customer two pages of purchases and one of subscriptions.
    expect(seen.length).toBe(17);
    expect((seen.at(-1)?.at ?? 0) - (seen[0]?.at ?? 0)).toBeGreaterThanOrEqual(1_500);
    for (const request of seen) {
      expect(
        seen.filter((other) => other.at >= request.at && other.at < request.at + 1000).length,
      ).toBeLessThanOrEqual(11);
    }
  }, 60_000);

  it("waits out a 429 for its backoff_ms and a 423, then reads on", async () => {
    const userId = newUserId("rc-429");
    customer(userId);
    const before = fake.requests.length;
    fake.script.push({ status: 429, backoffMs: 300, retryAfterSeconds: 60 }, { status: 423, backoffMs: 50 });
    const started = Date.now();
    const found = await reconcileCustomers(t, fake, [userId], { apply: true });
    expect(found.counts).toEqual({ credited: 1 });
    // backoff_ms (300 ms) was honoured, not Retry-After's minute.
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(Date.now() - started).toBeLessThan(30_000);
    const statuses = fake.requests.slice(before).map((r) => r.status);
    expect(statuses.slice(0, 2)).toEqual([429, 423]);
  });

  it("a credit RevenueCat does not list is not_in_revenuecat; a customer it does not know, unknown_customer", async () => {
    const unknown = newUserId("rc-404");
    const userId = newUserId("rc-unlisted");
    const txn = transactionId();
    await deliver(
      t.url,
      fixture("NON_RENEWING_PURCHASE__rc-docs", {
        app_user_id: userId,
        aliases: [userId],
        transaction_id: txn,
        original_transaction_id: txn,
        product_id: "token_pack_small",
      }),
    );
    customer(userId, []);
    const found = await reconcileCustomers(t, fake, [unknown, userId], { apply: true });
    expect(found.items).toEqual([
      expect.objectContaining({ outcome: "unknown_customer", userId: unknown, storeRef: null }),
      expect.objectContaining({ outcome: "not_in_revenuecat", userId, storeRef: `APP_STORE:${txn}` }),
    ]);
    expect(await balanceOf(t, userId)).toBe(100);
  });

  it("a customer that cannot be read is could_not_be_read, and the others are still reconciled", async () => {
    const good = newUserId("rc-good");
    customer(good);
    fake.failingCustomers.add("rc-broken-first");
    const found = await reconcileCustomers(t, fake, ["rc-broken-first", good], { apply: true });
    fake.failingCustomers.delete("rc-broken-first");
    expect(found.items.find((item) => item.userId === "rc-broken-first")?.outcome).toBe("could_not_be_read");
    expect(found.items.find((item) => item.userId === good)?.outcome).toBe("credited");
  }, 60_000);
});
