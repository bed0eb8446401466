import { describe, expect, it } from "vitest";
import {
  decide,
  type PurchasePolicyConfig,
  tokensForProduct,
} from "../../src/modules/purchases/purchase.policy.js";
import { revenuecatDeliverySchema } from "../../src/modules/purchases/revenuecat.event.js";
import { judge } from "../../src/modules/reconcile/reconcile-outcomes.js";
import type { UpstreamPurchase } from "../../src/modules/reconcile/upstream-purchase.js";
import { fixture } from "../helpers/revenuecat.js";

// The webhook's policy for subscription credits (issue 18), row by row of the design's §E table, as a
// pure function of a real RevenueCat delivery body and the product configuration: no database. The
// same rows through the webhook route, on both databases, are in subscription-credits.test.ts.

const HOUR = 3_600_000;
const NOW = Date.now();

const CONFIG: PurchasePolicyConfig = {
  environments: ["PRODUCTION", "SANDBOX"],
  productTokenMap: {
    pack_500: 500,
    legacy_monthly: 300,
    pro_monthly: { tokens: 1000, expires: "period_end", trialTokens: 0, rollover: { cap: 500 } },
    pro_trial: { tokens: 1000, expires: "period_end", trialTokens: 50 },
    pro_intro: { tokens: 1000, expires: "period_end", trialTokens: 0, introTokens: 400 },
    "pro:monthly": { tokens: 800, expires: "period_end", trialTokens: 0, creditGroup: "pro" },
    "pro:annual": { tokens: 12000, expires: "period_end", trialTokens: 0, creditGroup: "pro" },
    forever_monthly: { tokens: 200, expires: "never", trialTokens: 0 },
  },
};

function event(name: string, overrides: Record<string, unknown> = {}) {
  return revenuecatDeliverySchema.parse(fixture(name, overrides)).event;
}

/** A period of `product` for `userId`: from an hour ago to a month from now unless overridden. */
function period(type: "INITIAL_PURCHASE" | "RENEWAL", overrides: Record<string, unknown> = {}) {
  return event(`${type}__rc-docs`, {
    app_user_id: "u1",
    product_id: "pro_monthly",
    purchased_at_ms: NOW - HOUR,
    event_timestamp_ms: NOW - HOUR,
    expiration_at_ms: NOW + 720 * HOUR,
    ...overrides,
  });
}

describe("the subscription credit policy (pure)", () => {
  it("row 1: INITIAL_PURCHASE (NORMAL) of an expiring product opens one lot of its tokens over the period", () => {
    const e = period("INITIAL_PURCHASE");
    expect(decide(e, CONFIG)).toEqual({
      action: "credit",
      userId: "u1",
      tokens: 1000,
      storeRef: `APP_STORE:${e.transaction_id}`,
      lot: {
        source: "period",
        chain: `APP_STORE:${e.original_transaction_id}`,
        product: "pro_monthly",
        startsAt: new Date(NOW - HOUR).toISOString(),
        expiresAt: new Date(NOW + 720 * HOUR).toISOString(),
        rollover: { cap: 500 },
        supersede: true,
      },
    });
  });

  it("backward compatible: a number entry still credits non-expiring tokens, with no lot terms", () => {
    const decision = decide(period("RENEWAL", { product_id: "legacy_monthly" }), CONFIG);
    expect(decision).toMatchObject({ action: "credit", tokens: 300 });
    expect(decision).not.toHaveProperty("lot");
  });

  it("row 5: a period whose end has passed still credits, with its past end (the ledger writes it born expired)", () => {
    const decision = decide(
      period("RENEWAL", { purchased_at_ms: NOW - 800 * HOUR, expiration_at_ms: NOW - 80 * HOUR }),
      CONFIG,
    );
    expect(decision).toMatchObject({
      action: "credit",
      tokens: 1000,
      lot: { expiresAt: new Date(NOW - 80 * HOUR).toISOString() },
    });
  });

  it("row 6: a trial start grants trialTokens, expiring at trial end", () => {
    const end = NOW + 72 * HOUR;
    const decision = decide(
      period("INITIAL_PURCHASE", { product_id: "pro_trial", period_type: "TRIAL", expiration_at_ms: end }),
      CONFIG,
    );
    expect(decision).toMatchObject({
      action: "credit",
      tokens: 50,
      lot: { source: "trial", expiresAt: new Date(end).toISOString(), rollover: null },
    });
  });

  it("row 6: a trial of a product without trialTokens grants nothing (the default 0)", () => {
    expect(decide(period("INITIAL_PURCHASE", { period_type: "TRIAL" }), CONFIG)).toEqual({
      action: "ignore",
      reason: "a trial of pro_monthly grants 0 tokens",
    });
  });

  it("row 8: the trial's conversion (RENEWAL, is_trial_conversion) is a full period", () => {
    const decision = decide(
      period("RENEWAL", { product_id: "pro_trial", is_trial_conversion: true, period_type: "NORMAL" }),
      CONFIG,
    );
    expect(decision).toMatchObject({ action: "credit", tokens: 1000, lot: { source: "period" } });
  });

  it("row 9: an INTRO period grants the full tokens, or introTokens when configured", () => {
    expect(decide(period("INITIAL_PURCHASE", { period_type: "INTRO" }), CONFIG)).toMatchObject({
      tokens: 1000,
    });
    expect(
      decide(period("INITIAL_PURCHASE", { period_type: "INTRO", product_id: "pro_intro" }), CONFIG),
    ).toMatchObject({ tokens: 400 });
  });

  it("row 10: store PROMOTIONAL grants nothing by default, and grants when SUBSCRIPTION_GRANT_PROMOTIONAL is on", () => {
    const promo = period("INITIAL_PURCHASE", { store: "PROMOTIONAL" });
    expect(decide(promo, CONFIG)).toMatchObject({
      action: "ignore",
      reason: expect.stringMatching(/promotional/),
    });
    expect(decide(promo, { ...CONFIG, grantPromotional: true })).toMatchObject({
      action: "credit",
      tokens: 1000,
    });
  });

  it("row 11: a Play base plan with only the subscription id mapped as an object is unmapped (fail closed)", () => {
    expect(decide(period("INITIAL_PURCHASE", { product_id: "pro:weekly" }), CONFIG)).toMatchObject({
      action: "unmapped",
    });
    expect(decide(period("INITIAL_PURCHASE", { product_id: "pro_monthly:annual" }), CONFIG)).toMatchObject({
      action: "unmapped",
    });
    expect(decide(period("INITIAL_PURCHASE", { product_id: "pro:annual" }), CONFIG)).toMatchObject({
      action: "credit",
      tokens: 12000,
    });
    // Number entries keep the base-plan fallback.
    expect(decide(period("INITIAL_PURCHASE", { product_id: "legacy_monthly:p1m" }), CONFIG)).toMatchObject({
      action: "credit",
      tokens: 300,
    });
    expect(tokensForProduct(CONFIG.productTokenMap, "pro_monthly:annual")).toBeNull();
  });

  it("row 12: is_family_share grants nothing by default, and grants when SUBSCRIPTION_GRANT_FAMILY_SHARE is on", () => {
    const shared = period("RENEWAL", { is_family_share: true });
    expect(decide(shared, CONFIG)).toMatchObject({
      action: "ignore",
      reason: expect.stringMatching(/Family/),
    });
    expect(decide(shared, { ...CONFIG, grantFamilyShare: true })).toMatchObject({ action: "credit" });
  });

  it("row 13: a period asks to supersede its chain's older lots, unless SUBSCRIPTION_ON_UPGRADE=keep", () => {
    expect(decide(period("RENEWAL"), CONFIG)).toMatchObject({ lot: { supersede: true } });
    expect(decide(period("RENEWAL"), { ...CONFIG, onUpgrade: "keep" })).toMatchObject({
      lot: { supersede: false },
    });
  });

  it("row 13: a credit group is the chain, so a Play product change (a new purchase) stays in it", () => {
    const decision = decide(
      period("INITIAL_PURCHASE", { product_id: "pro:annual", store: "PLAY_STORE" }),
      CONFIG,
    );
    expect(decision).toMatchObject({ lot: { chain: "group:pro" } });
  });

  it("row 14: PRODUCT_CHANGE moves no tokens", () => {
    expect(decide(event("PRODUCT_CHANGE__rc-docs", { product_id: "pro_monthly" }), CONFIG)).toMatchObject({
      action: "ignore",
    });
  });

  it("row 16: a Stripe change's RENEWAL with the original purchased_at starts at the event, ends at expiration_at_ms", () => {
    const decision = decide(
      period("RENEWAL", {
        store: "STRIPE",
        purchased_at_ms: NOW - 400 * HOUR,
        event_timestamp_ms: NOW - HOUR,
      }),
      CONFIG,
    );
    expect(decision).toMatchObject({
      lot: {
        startsAt: new Date(NOW - HOUR).toISOString(),
        expiresAt: new Date(NOW + 720 * HOUR).toISOString(),
      },
    });
  });

  it("row 17: BILLING_ISSUE moves no tokens", () => {
    expect(decide(event("BILLING_ISSUE__rc-docs", { product_id: "pro_monthly" }), CONFIG)).toMatchObject({
      action: "ignore",
    });
  });

  it("row 18: a zero-price Stripe RENEWAL grants nothing; a priced one grants", () => {
    expect(decide(period("RENEWAL", { store: "STRIPE", price: 0 }), CONFIG)).toMatchObject({
      action: "ignore",
      reason: expect.stringMatching(/zero-price Stripe renewal/),
    });
    expect(decide(period("RENEWAL", { store: "STRIPE", price: 9.99 }), CONFIG)).toMatchObject({
      action: "credit",
    });
    // Elsewhere a zero price is not an unpaid invoice.
    expect(decide(period("RENEWAL", { price: 0 }), CONFIG)).toMatchObject({ action: "credit" });
  });

  it("row 19: EXPIRATION asks to end the period's lot no later than expiration_at_ms", () => {
    const e = event("EXPIRATION__rc-docs", { product_id: "pro_monthly", expiration_at_ms: NOW - HOUR });
    expect(decide(e, CONFIG)).toEqual({
      action: "cut",
      storeRef: `APP_STORE:${e.transaction_id}`,
      expiresAt: new Date(NOW - HOUR).toISOString(),
    });
    // A product whose tokens never expire has no end to cut.
    expect(decide(event("EXPIRATION__rc-docs", { product_id: "legacy_monthly" }), CONFIG)).toMatchObject({
      action: "ignore",
    });
    expect(decide(event("EXPIRATION__rc-docs", { product_id: "forever_monthly" }), CONFIG)).toMatchObject({
      action: "ignore",
    });
  });

  it("row 20: SUBSCRIPTION_EXTENDED asks to move the period's lot end to expiration_at_ms", () => {
    const e = event("SUBSCRIPTION_EXTENDED__rc-docs", {
      product_id: "pro_monthly",
      expiration_at_ms: NOW + 900 * HOUR,
    });
    expect(decide(e, CONFIG)).toEqual({
      action: "extend",
      storeRef: `APP_STORE:${e.transaction_id}`,
      expiresAt: new Date(NOW + 900 * HOUR).toISOString(),
    });
  });

  it("row 21: SUBSCRIPTION_PAUSED moves no tokens", () => {
    expect(
      decide(event("SUBSCRIPTION_PAUSED__rc-docs", { product_id: "pro_monthly" }), CONFIG),
    ).toMatchObject({
      action: "ignore",
    });
  });

  it("row 22: TEMPORARY_ENTITLEMENT_GRANT moves no tokens", () => {
    expect(decide(event("TEMPORARY_ENTITLEMENT_GRANT__rc-docs"), CONFIG)).toMatchObject({ action: "ignore" });
  });

  it("a subscription period without expiration_at_ms is kept as failed, not credited forever", () => {
    expect(decide(period("RENEWAL", { expiration_at_ms: null }), CONFIG)).toMatchObject({
      action: "fail",
      reason: expect.stringMatching(/no expiration_at_ms/),
    });
  });

  it("a subscription entry with expires: never opens a lot that never expires", () => {
    expect(decide(period("RENEWAL", { product_id: "forever_monthly" }), CONFIG)).toMatchObject({
      tokens: 200,
      lot: { source: "period", expiresAt: null },
    });
  });

  it("a NON_RENEWING_PURCHASE never expires, whatever its entry (App Review 3.1.1)", () => {
    const decision = decide(event("NON_RENEWING_PURCHASE__rc-docs", { product_id: "pro_monthly" }), CONFIG);
    expect(decision).toMatchObject({ action: "credit", tokens: 1000 });
    expect(decision).not.toHaveProperty("lot");
  });

  it("reconcile expects a subscription product's period grant, and an object entry's exact id only", () => {
    const upstream = (productId: string): UpstreamPurchase => ({
      userId: "u1",
      store: "PLAY_STORE",
      transactionId: "GPA.1",
      productId,
      environment: "PRODUCTION",
      refunded: false,
      type: "RENEWAL",
      purchasedAtMs: NOW - 30 * 24 * HOUR,
      expirationAtMs: NOW,
      ownership: "PURCHASED",
      source: "v2:sub1",
    });
    const judgement = { policy: CONFIG, now: NOW, marginMs: HOUR };
    expect(judge(upstream("pro:annual"), undefined, judgement)).toEqual({
      action: "credit",
      tokens: 12000,
      storeRef: "PLAY_STORE:GPA.1",
    });
    expect(judge(upstream("pro_monthly:annual"), undefined, judgement)).toMatchObject({
      outcome: "unknown_product",
    });
    expect(judge(upstream("legacy_monthly:p1m"), undefined, judgement)).toMatchObject({ tokens: 300 });
  });
});
