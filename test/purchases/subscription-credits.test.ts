import { describe, expect, it } from "vitest";
import { newUserId, useTestApp } from "../helpers/app.js";
import { driverName } from "../helpers/database.js";
import {
  balanceOf,
  DAY,
  entriesOf,
  HOUR,
  iso,
  lotsOf,
  PRODUCT_TOKEN_MAP,
  Subscription,
  send,
  spend,
  storeRef,
  sweep,
  until,
} from "./subscription-helpers.js";

// Subscription credits that expire (issue 18), design §E rows 1–22, through the real webhook route
// with RevenueCat's documented bodies. Refund rows (23–28) are in subscription-refunds.test.ts; the
// policy alone (no database) in subscription-policy.test.ts.

const t = useTestApp({ PRODUCT_TOKEN_MAP: JSON.stringify(PRODUCT_TOKEN_MAP) });

describe(`subscription credits through the webhook on ${driverName}`, () => {
  it("row 1: INITIAL_PURCHASE (NORMAL) of an expiring product opens one lot over its period", async () => {
    const sub = new Subscription(newUserId());
    const now = Date.now();
    const body = sub.period("INITIAL_PURCHASE", now - HOUR, now + 30 * DAY);
    expect(await send(t, body)).toMatchObject({ outcome: "credited", detail: "1000 tokens for pro_monthly" });
    expect(await lotsOf(t, sub.userId)).toEqual([
      {
        source: "period",
        sourceRef: storeRef(body),
        chainRef: `APP_STORE:${sub.original}`,
        productId: "pro_monthly",
        granted: 1000,
        remaining: 1000,
        expired: 0,
        startsAt: iso(now - HOUR),
        expiresAt: iso(now + 30 * DAY),
      },
    ]);
    expect((await entriesOf(t, sub.userId)).map((e) => [e.kind, e.amount])).toEqual([["PURCHASE", 1000]]);
    expect(await balanceOf(t, sub.userId)).toBe(1000);
  });

  it("row 2: the same period redelivered, or under another event id, is a duplicate: no second lot", async () => {
    const sub = new Subscription(newUserId());
    const now = Date.now();
    const body = sub.period("INITIAL_PURCHASE", now - HOUR, now + 30 * DAY);
    await send(t, body);
    expect(await send(t, body)).toMatchObject({ outcome: "duplicate" });
    const again = structuredClone(body);
    again.event.id = `${body.event.id}-again`;
    expect(await send(t, again)).toMatchObject({ outcome: "duplicate" });
    expect(await lotsOf(t, sub.userId)).toHaveLength(1);
    expect(await balanceOf(t, sub.userId)).toBe(1000);
  });

  it("row 2: five twins of one period under different event ids, delivered at once, open one lot", async () => {
    const sub = new Subscription(newUserId());
    const now = Date.now();
    const body = sub.period("RENEWAL", now - HOUR, now + 30 * DAY);
    const twins = Array.from({ length: 5 }, (_, i) => {
      const twin = structuredClone(body);
      twin.event.id = `${body.event.id}-${i}`;
      return twin;
    });
    const outcomes = await Promise.all(twins.map((twin) => send(t, twin)));
    expect(outcomes.map((o) => o.outcome).sort()).toEqual([
      "credited",
      "duplicate",
      "duplicate",
      "duplicate",
      "duplicate",
    ]);
    expect(await lotsOf(t, sub.userId)).toHaveLength(1);
    expect(await balanceOf(t, sub.userId)).toBe(1000);
  });

  it("row 3: a RENEWAL before the old period's end: both lots live, spends take the sooner one, its rest expires at its own end", async () => {
    const sub = new Subscription(newUserId());
    const now = Date.now();
    const end = now + 4000;
    await send(t, sub.period("INITIAL_PURCHASE", now - 30 * DAY, end));
    await send(t, sub.period("RENEWAL", now, end + 30 * DAY));
    expect((await lotsOf(t, sub.userId)).map((l) => l.remaining)).toEqual([1000, 1000]);
    await spend(t, sub.userId, 300);
    expect((await lotsOf(t, sub.userId)).map((l) => l.remaining)).toEqual([700, 1000]);
    await until(end);
    await sweep(t, sub.userId);
    expect((await lotsOf(t, sub.userId)).map((l) => [l.remaining, l.expired])).toEqual([
      [0, 700],
      [1000, 0],
    ]);
    expect((await entriesOf(t, sub.userId)).map((e) => [e.kind, e.amount])).toEqual([
      ["PURCHASE", 1000],
      ["PURCHASE", 1000],
      ["SPEND", -300],
      ["EXPIRE", -700],
    ]);
    expect(await balanceOf(t, sub.userId)).toBe(1000);
  });

  it("row 4: a RENEWAL after the old lot expired opens its own lot; the old one stays expired", async () => {
    const sub = new Subscription(newUserId());
    const now = Date.now();
    const end = now + 3000;
    await send(t, sub.period("INITIAL_PURCHASE", now - 30 * DAY, end));
    await until(end);
    // The late renewal (grace recovery) touches the user: the old lot expires before the new one opens.
    await send(t, sub.period("RENEWAL", end, end + 30 * DAY));
    const lots = await lotsOf(t, sub.userId);
    expect(lots.map((l) => [l.remaining, l.expired, l.expiresAt])).toEqual([
      [0, 1000, iso(end)],
      [1000, 0, iso(end + 30 * DAY)],
    ]);
    expect(await balanceOf(t, sub.userId)).toBe(1000);
  });

  it("a product's rollover cap reaches the lot: at the period's end up to the cap carries over (row 33, from the webhook)", async () => {
    const sub = new Subscription(newUserId(), "pro_rollover");
    const now = Date.now();
    const end = now + 3000;
    await send(t, sub.period("INITIAL_PURCHASE", now - 30 * DAY + 3000, end));
    await spend(t, sub.userId, 200);
    await until(end);
    await sweep(t, sub.userId);
    expect((await lotsOf(t, sub.userId)).map((l) => [l.source, l.remaining, l.expired])).toEqual([
      ["period", 0, 300],
      ["rollover", 500, 0],
    ]);
    expect(await balanceOf(t, sub.userId)).toBe(500);
  });

  it("row 5: a period processed after its end is born expired: PURCHASE and EXPIRE, net 0", async () => {
    const sub = new Subscription(newUserId());
    const now = Date.now();
    const body = sub.period("RENEWAL", now - 40 * DAY, now - 10 * DAY);
    expect(await send(t, body)).toMatchObject({ outcome: "credited" });
    expect((await entriesOf(t, sub.userId)).map((e) => [e.kind, e.amount])).toEqual([
      ["PURCHASE", 1000],
      ["EXPIRE", -1000],
    ]);
    expect(await lotsOf(t, sub.userId)).toMatchObject([{ granted: 1000, remaining: 0, expired: 1000 }]);
    expect(await balanceOf(t, sub.userId)).toBe(0);
  });

  it("row 6: a trial start grants trialTokens, expiring at trial end; a product without trialTokens grants nothing", async () => {
    const sub = new Subscription(newUserId(), "pro_trial");
    const now = Date.now();
    const body = sub.period("INITIAL_PURCHASE", now, now + 3 * DAY, { period_type: "TRIAL" });
    expect(await send(t, body)).toMatchObject({ outcome: "credited", detail: "50 tokens for pro_trial" });
    expect(await lotsOf(t, sub.userId)).toMatchObject([
      { source: "trial", granted: 50, expiresAt: iso(now + 3 * DAY) },
    ]);

    const plain = new Subscription(newUserId());
    const trial = plain.period("INITIAL_PURCHASE", now, now + 3 * DAY, { period_type: "TRIAL" });
    expect(await send(t, trial)).toMatchObject({
      outcome: "ignored",
      detail: "a trial of pro_monthly grants 0 tokens",
    });
    expect(await lotsOf(t, plain.userId)).toEqual([]);
    expect(await balanceOf(t, plain.userId)).toBe(0);
  });

  it("row 7: a trial cancelled keeps its lot to the trial's end, not to the CANCELLATION", async () => {
    const sub = new Subscription(newUserId(), "pro_trial");
    const now = Date.now();
    const end = now + 3000;
    await send(t, sub.period("INITIAL_PURCHASE", now, end, { period_type: "TRIAL" }));
    const cancelled = sub.event("CANCELLATION__rc-docs", {
      transaction_id: transactionOf(await lotsOf(t, sub.userId)),
      period_type: "TRIAL",
      expiration_at_ms: end,
    });
    expect(await send(t, cancelled)).toMatchObject({ outcome: "ignored" });
    expect(await balanceOf(t, sub.userId)).toBe(50);
    await until(end);
    await sweep(t, sub.userId);
    expect(await lotsOf(t, sub.userId)).toMatchObject([{ source: "trial", remaining: 0, expired: 50 }]);
    expect(await balanceOf(t, sub.userId)).toBe(0);
  });

  it("row 8: the trial's conversion (RENEWAL, is_trial_conversion) opens a full period; the trial lot keeps its end and is used first", async () => {
    const sub = new Subscription(newUserId(), "pro_trial");
    const now = Date.now();
    await send(t, sub.period("INITIAL_PURCHASE", now - DAY, now + DAY, { period_type: "TRIAL" }));
    const conversion = sub.period("RENEWAL", now, now + 30 * DAY, { is_trial_conversion: true });
    expect(await send(t, conversion)).toMatchObject({
      outcome: "credited",
      detail: "1000 tokens for pro_trial",
    });
    await spend(t, sub.userId, 30);
    expect((await lotsOf(t, sub.userId)).map((l) => [l.source, l.remaining, l.expiresAt])).toEqual([
      ["trial", 20, iso(now + DAY)],
      ["period", 1000, iso(now + 30 * DAY)],
    ]);
    expect(await balanceOf(t, sub.userId)).toBe(1020);
  });

  it("row 9: an INTRO period grants the full tokens, or introTokens when configured", async () => {
    const now = Date.now();
    const full = new Subscription(newUserId());
    await send(t, full.period("INITIAL_PURCHASE", now, now + 30 * DAY, { period_type: "INTRO" }));
    expect(await balanceOf(t, full.userId)).toBe(1000);
    const intro = new Subscription(newUserId(), "pro_intro");
    await send(t, intro.period("INITIAL_PURCHASE", now, now + 30 * DAY, { period_type: "INTRO" }));
    expect(await lotsOf(t, intro.userId)).toMatchObject([{ source: "period", granted: 400 }]);
  });

  it("row 10: store PROMOTIONAL (a RevenueCat-granted entitlement) grants nothing by default", async () => {
    const sub = new Subscription(newUserId(), "pro_monthly", "PROMOTIONAL");
    const now = Date.now();
    const body = sub.period("INITIAL_PURCHASE", now, now + 30 * DAY, { period_type: "PROMOTIONAL" });
    expect(await send(t, body)).toMatchObject({
      outcome: "ignored",
      detail: expect.stringMatching(/promotional/),
    });
    expect(await lotsOf(t, sub.userId)).toEqual([]);
    expect(await balanceOf(t, sub.userId)).toBe(0);
  });

  it("row 11: a Play base plan whose subscription is mapped only as an object is unmapped, never the other plan's grant", async () => {
    const sub = new Subscription(newUserId(), "play_sub:annual", "PLAY_STORE");
    const now = Date.now();
    const body = sub.period("INITIAL_PURCHASE", now, now + 365 * DAY);
    expect(await send(t, body)).toMatchObject({
      outcome: "unmapped",
      detail: "product play_sub:annual is not in PRODUCT_TOKEN_MAP",
    });
    expect(await balanceOf(t, sub.userId)).toBe(0);
  });

  it("row 12: is_family_share=true grants nothing by default", async () => {
    const sub = new Subscription(newUserId());
    const now = Date.now();
    const body = sub.period("INITIAL_PURCHASE", now, now + 30 * DAY, { is_family_share: true });
    expect(await send(t, body)).toMatchObject({
      outcome: "ignored",
      detail: expect.stringMatching(/Family Sharing/),
    });
    expect(await balanceOf(t, sub.userId)).toBe(0);
  });

  it("row 13: an immediate Apple upgrade (PRODUCT_CHANGE + RENEWAL of B) expires A's free remainder as superseded", async () => {
    const sub = new Subscription(newUserId());
    const now = Date.now();
    await send(t, sub.period("INITIAL_PURCHASE", now - 10 * DAY, now + 20 * DAY));
    await spend(t, sub.userId, 200);
    const change = sub.event("PRODUCT_CHANGE__rc-docs", { new_product_id: "pro_max", store: "APP_STORE" });
    expect(await send(t, change)).toMatchObject({ outcome: "ignored" });
    expect(await balanceOf(t, sub.userId)).toBe(800);
    const upgraded = new Subscription(sub.userId, "pro_max");
    const renewal = upgraded.period("RENEWAL", now, now + 30 * DAY, {
      original_transaction_id: sub.original,
    });
    expect(await send(t, renewal)).toMatchObject({ outcome: "credited", detail: "3000 tokens for pro_max" });
    const entries = await entriesOf(t, sub.userId);
    expect(entries.map((e) => [e.kind, e.amount])).toEqual([
      ["PURCHASE", 1000],
      ["SPEND", -200],
      ["PURCHASE", 3000],
      ["EXPIRE", -800],
    ]);
    expect(entries[3]?.metadata).toMatchObject({ reason: "superseded" });
    expect((await lotsOf(t, sub.userId)).map((l) => [l.productId, l.remaining, l.expired])).toEqual([
      ["pro_monthly", 0, 800],
      ["pro_max", 3000, 0],
    ]);
    expect(await balanceOf(t, sub.userId)).toBe(3000);
  });

  it("row 13: a Play upgrade (a new INITIAL_PURCHASE of B) supersedes A through the products' credit group", async () => {
    const userId = newUserId();
    const now = Date.now();
    const monthly = new Subscription(userId, "pro:monthly", "PLAY_STORE");
    await send(t, monthly.period("INITIAL_PURCHASE", now - 10 * DAY, now + 20 * DAY));
    const annual = new Subscription(userId, "pro:annual", "PLAY_STORE");
    await send(t, annual.period("INITIAL_PURCHASE", now, now + 365 * DAY));
    expect((await lotsOf(t, userId)).map((l) => [l.chainRef, l.remaining, l.expired])).toEqual([
      ["group:pro", 0, 800],
      ["group:pro", 12000, 0],
    ]);
    expect(await balanceOf(t, userId)).toBe(12000);
  });

  it("row 13: a renewal of the same product supersedes nothing, also before the old period's end", async () => {
    const sub = new Subscription(newUserId(), "pro:monthly", "PLAY_STORE");
    const now = Date.now();
    await send(t, sub.period("INITIAL_PURCHASE", now - 29 * DAY, now + DAY));
    await send(t, sub.period("RENEWAL", now, now + 31 * DAY));
    expect((await lotsOf(t, sub.userId)).map((l) => l.remaining)).toEqual([800, 800]);
  });

  it("row 13: an older period of A processed after the upgrade to B (a late reprocess) supersedes nothing", async () => {
    const sub = new Subscription(newUserId());
    const now = Date.now();
    await send(t, sub.period("INITIAL_PURCHASE", now - 10 * DAY, now + 20 * DAY));
    const upgraded = new Subscription(sub.userId, "pro_max");
    await send(t, upgraded.period("RENEWAL", now, now + 30 * DAY, { original_transaction_id: sub.original }));
    await send(t, sub.period("RENEWAL", now - DAY, now + 25 * DAY));
    expect((await lotsOf(t, sub.userId)).map((l) => [l.productId, l.remaining])).toEqual([
      ["pro_monthly", 0],
      ["pro_max", 3000],
      ["pro_monthly", 1000],
    ]);
    expect(await balanceOf(t, sub.userId)).toBe(4000);
  });

  it("row 14: a deferred downgrade (PRODUCT_CHANGE only) moves nothing; A ends at its end, B opens at RENEWAL", async () => {
    const sub = new Subscription(newUserId(), "pro_max");
    const now = Date.now();
    const end = now + 3000;
    await send(t, sub.period("INITIAL_PURCHASE", now - 30 * DAY, end));
    const change = sub.event("PRODUCT_CHANGE__rc-docs", {
      new_product_id: "pro_monthly",
      store: "APP_STORE",
    });
    expect(await send(t, change)).toMatchObject({ outcome: "ignored" });
    expect(await lotsOf(t, sub.userId)).toMatchObject([{ remaining: 3000, expiresAt: iso(end) }]);
    await until(end);
    const downgraded = new Subscription(sub.userId, "pro_monthly");
    await send(
      t,
      downgraded.period("RENEWAL", end, end + 30 * DAY, { original_transaction_id: sub.original }),
    );
    const entries = await entriesOf(t, sub.userId);
    expect(entries.map((e) => [e.kind, e.amount, e.metadata?.reason ?? null])).toEqual([
      ["PURCHASE", 3000, null],
      ["EXPIRE", -3000, "expired"],
      ["PURCHASE", 1000, null],
    ]);
    expect(await balanceOf(t, sub.userId)).toBe(1000);
  });

  it("row 15: an Apple crossgrade of the same duration is treated as an upgrade", async () => {
    const sub = new Subscription(newUserId());
    const now = Date.now();
    await send(t, sub.period("INITIAL_PURCHASE", now - 10 * DAY, now + 20 * DAY));
    const cross = new Subscription(sub.userId, "pro_monthly_alt");
    await send(t, cross.period("RENEWAL", now, now + 30 * DAY, { original_transaction_id: sub.original }));
    expect((await lotsOf(t, sub.userId)).map((l) => [l.productId, l.remaining, l.expired])).toEqual([
      ["pro_monthly", 0, 1000],
      ["pro_monthly_alt", 1000, 0],
    ]);
  });

  it("row 16: a Stripe change's RENEWAL carrying the original purchased_at starts at the event, ends at expiration_at_ms", async () => {
    const sub = new Subscription(newUserId(), "pro_monthly", "STRIPE");
    const now = Date.now();
    const body = sub.period("RENEWAL", now - 20 * DAY, now + 30 * DAY, { event_timestamp_ms: now - HOUR });
    await send(t, body);
    expect(await lotsOf(t, sub.userId)).toMatchObject([
      {
        sourceRef: storeRef(body),
        startsAt: iso(now - HOUR),
        expiresAt: iso(now + 30 * DAY),
        remaining: 1000,
      },
    ]);
  });

  it("row 17: BILLING_ISSUE opens no lot and leaves the old one's end; the recovery RENEWAL opens the next", async () => {
    const sub = new Subscription(newUserId());
    const now = Date.now();
    await send(t, sub.period("INITIAL_PURCHASE", now - 29 * DAY, now + DAY));
    const issue = sub.event("BILLING_ISSUE__rc-docs", {
      transaction_id: transactionOf(await lotsOf(t, sub.userId)),
      grace_period_expiration_at_ms: now + 7 * DAY,
      expiration_at_ms: now + DAY,
    });
    expect(await send(t, issue)).toMatchObject({ outcome: "ignored" });
    expect(await lotsOf(t, sub.userId)).toMatchObject([{ remaining: 1000, expiresAt: iso(now + DAY) }]);
    await send(t, sub.period("RENEWAL", now + DAY, now + 31 * DAY));
    expect((await lotsOf(t, sub.userId)).map((l) => l.expiresAt)).toEqual([
      iso(now + DAY),
      iso(now + 31 * DAY),
    ]);
  });

  it("row 18: a zero-price Stripe RENEWAL (invoice unpaid) grants nothing; the next priced RENEWAL grants", async () => {
    const sub = new Subscription(newUserId(), "pro_monthly", "STRIPE");
    const now = Date.now();
    const unpaid = sub.period("RENEWAL", now, now + 30 * DAY, { price: 0, price_in_purchased_currency: 0 });
    expect(await send(t, unpaid)).toMatchObject({
      outcome: "ignored",
      detail: expect.stringMatching(/zero-price Stripe renewal/),
    });
    expect(await balanceOf(t, sub.userId)).toBe(0);
    expect(await send(t, sub.period("RENEWAL", now + HOUR, now + 30 * DAY))).toMatchObject({
      outcome: "credited",
    });
    expect(await balanceOf(t, sub.userId)).toBe(1000);
  });

  it("row 19: an EXPIRATION at the lot's own end changes nothing; an earlier one cuts the lot and expires its rest", async () => {
    const sub = new Subscription(newUserId());
    const now = Date.now();
    const body = sub.period("INITIAL_PURCHASE", now - 10 * DAY, now + 20 * DAY);
    await send(t, body);
    await spend(t, sub.userId, 100);
    const atEnd = sub.event("EXPIRATION__rc-docs", {
      transaction_id: body.event.transaction_id,
      expiration_at_ms: now + 20 * DAY,
    });
    expect(await send(t, atEnd)).toMatchObject({ outcome: "ignored" });
    expect(await balanceOf(t, sub.userId)).toBe(900);
    const revoked = sub.event("EXPIRATION__rc-docs", {
      transaction_id: body.event.transaction_id,
      expiration_at_ms: now - 60_000,
      expiration_reason: "UNSUBSCRIBE",
    });
    expect(await send(t, revoked)).toMatchObject({ outcome: "cut" });
    expect(await lotsOf(t, sub.userId)).toMatchObject([
      { remaining: 0, expired: 900, expiresAt: iso(now - 60_000) },
    ]);
    expect((await entriesOf(t, sub.userId)).at(-1)).toMatchObject({ kind: "EXPIRE", amount: -900 });
    expect(await balanceOf(t, sub.userId)).toBe(0);
  });

  it("row 20: SUBSCRIPTION_EXTENDED moves the lot's end later; no new tokens", async () => {
    const sub = new Subscription(newUserId());
    const now = Date.now();
    const body = sub.period("INITIAL_PURCHASE", now - 10 * DAY, now + 20 * DAY);
    await send(t, body);
    const extended = sub.event("SUBSCRIPTION_EXTENDED__rc-docs", {
      transaction_id: body.event.transaction_id,
      expiration_at_ms: now + 27 * DAY,
    });
    expect(await send(t, extended)).toMatchObject({ outcome: "extended" });
    expect(await lotsOf(t, sub.userId)).toMatchObject([{ remaining: 1000, expiresAt: iso(now + 27 * DAY) }]);
    expect(await entriesOf(t, sub.userId)).toHaveLength(1);
    expect(await balanceOf(t, sub.userId)).toBe(1000);
  });

  it("row 21: SUBSCRIPTION_PAUSED moves nothing; the resume RENEWAL opens a lot", async () => {
    const sub = new Subscription(newUserId(), "play_sub", "PLAY_STORE");
    const now = Date.now();
    await send(t, sub.period("INITIAL_PURCHASE", now - 29 * DAY, now + DAY));
    expect(await send(t, sub.event("SUBSCRIPTION_PAUSED__rc-docs"))).toMatchObject({ outcome: "ignored" });
    expect(await lotsOf(t, sub.userId)).toMatchObject([{ remaining: 1000, expiresAt: iso(now + DAY) }]);
    await send(t, sub.period("RENEWAL", now + DAY, now + 31 * DAY));
    expect(await lotsOf(t, sub.userId)).toHaveLength(2);
  });

  it("row 22: TEMPORARY_ENTITLEMENT_GRANT grants nothing; the purchase after it opens one lot; one followed by EXPIRATION gives nothing", async () => {
    const sub = new Subscription(newUserId());
    const now = Date.now();
    const temporary = sub.event("TEMPORARY_ENTITLEMENT_GRANT__rc-docs", { transaction_id: "temp-1" });
    expect(await send(t, temporary)).toMatchObject({ outcome: "ignored" });
    await send(t, sub.period("INITIAL_PURCHASE", now, now + 30 * DAY));
    expect(await lotsOf(t, sub.userId)).toHaveLength(1);
    expect(await balanceOf(t, sub.userId)).toBe(1000);

    const other = new Subscription(newUserId());
    const txn = `temp-${other.original}`;
    await send(t, other.event("TEMPORARY_ENTITLEMENT_GRANT__rc-docs", { transaction_id: txn }));
    const expired = other.event("EXPIRATION__rc-docs", { transaction_id: txn, expiration_at_ms: now });
    expect(await send(t, expired)).toMatchObject({ outcome: "ignored" });
    expect(await lotsOf(t, other.userId)).toEqual([]);
    expect(await balanceOf(t, other.userId)).toBe(0);
  });
});

/** The store transaction id of a user's only lot. */
function transactionOf(lots: { sourceRef: string | null }[]): string {
  const [lot] = lots;
  return (lot?.sourceRef ?? "").split(":").slice(1).join(":");
}
