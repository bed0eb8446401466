import { describe, expect, it } from "vitest";
import { newUserId, useTestApp } from "../helpers/app.js";
import { driverName } from "../helpers/database.js";
import {
  balanceOf,
  DAY,
  entriesOf,
  lotsOf,
  PRODUCT_TOKEN_MAP,
  Subscription,
  send,
  spend,
} from "./subscription-helpers.js";

// The SUBSCRIPTION_* switches turned away from their defaults, through the webhook: an upgrade keeps
// the older lot to its own end (§E row 13's `keep`), a family member and a promotional grant are
// credited (rows 12 and 10, when an app wants them).

const t = useTestApp({
  PRODUCT_TOKEN_MAP: JSON.stringify(PRODUCT_TOKEN_MAP),
  SUBSCRIPTION_ON_UPGRADE: "keep",
  SUBSCRIPTION_GRANT_FAMILY_SHARE: "true",
  SUBSCRIPTION_GRANT_PROMOTIONAL: "true",
});

describe(`the SUBSCRIPTION_* switches on ${driverName}`, () => {
  it("row 13 with SUBSCRIPTION_ON_UPGRADE=keep: the upgrade opens B's lot and A's lot keeps its tokens to its own end", async () => {
    const sub = new Subscription(newUserId());
    const now = Date.now();
    await send(t, sub.period("INITIAL_PURCHASE", now - 10 * DAY, now + 20 * DAY));
    await spend(t, sub.userId, 200);
    const upgraded = new Subscription(sub.userId, "pro_max");
    await send(t, upgraded.period("RENEWAL", now, now + 30 * DAY, { original_transaction_id: sub.original }));
    expect((await lotsOf(t, sub.userId)).map((l) => [l.productId, l.remaining, l.expiresAt])).toEqual([
      ["pro_monthly", 800, new Date(now + 20 * DAY).toISOString()],
      ["pro_max", 3000, new Date(now + 30 * DAY).toISOString()],
    ]);
    expect((await entriesOf(t, sub.userId)).map((e) => e.kind)).not.toContain("EXPIRE");
    expect(await balanceOf(t, sub.userId)).toBe(3800);
  });

  it("row 12 with SUBSCRIPTION_GRANT_FAMILY_SHARE=true: a family member's shared period is credited", async () => {
    const sub = new Subscription(newUserId());
    const now = Date.now();
    const shared = sub.period("RENEWAL", now, now + 30 * DAY, { is_family_share: true });
    expect(await send(t, shared)).toMatchObject({ outcome: "credited" });
    expect(await balanceOf(t, sub.userId)).toBe(1000);
  });

  it("row 10 with SUBSCRIPTION_GRANT_PROMOTIONAL=true: a RevenueCat promotional grant is credited", async () => {
    const sub = new Subscription(newUserId(), "pro_monthly", "PROMOTIONAL");
    const now = Date.now();
    const promo = sub.period("INITIAL_PURCHASE", now, now + 30 * DAY, { period_type: "PROMOTIONAL" });
    expect(await send(t, promo)).toMatchObject({ outcome: "credited" });
    expect(await lotsOf(t, sub.userId)).toMatchObject([{ granted: 1000, source: "period" }]);
  });
});
