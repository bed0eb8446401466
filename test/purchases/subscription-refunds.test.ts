import { describe, expect, it } from "vitest";
import { newUserId, useTestApp } from "../helpers/app.js";
import { driverName } from "../helpers/database.js";
import type { Delivery } from "../helpers/revenuecat.js";
import {
  balanceOf,
  DAY,
  entriesOf,
  lotsOf,
  PRODUCT_TOKEN_MAP,
  Subscription,
  send,
  spend,
  sweep,
  transactionId,
  until,
} from "./subscription-helpers.js";

// Refunds of subscription periods and packs (issue 18), design §E rows 23–28, through the real
// webhook route with RevenueCat's documented bodies: a refund claws back from the refunded purchase's
// own lot first, counts its already-expired part as returned, then takes from the owner's other lots
// soonest-expiring first, never below 0; REFUND_REVERSED gives back exactly what it took. Row 26 is a
// documented limitation (docs/revenuecat.md).

const t = useTestApp({ PRODUCT_TOKEN_MAP: JSON.stringify(PRODUCT_TOKEN_MAP) });

/** A token pack bought by `userId`. */
function pack(userId: string, productId = "pack_300"): Delivery {
  return new Subscription(userId, productId).event("NON_RENEWING_PURCHASE__rc-docs", {
    transaction_id: transactionId(),
    store: "APP_STORE",
  });
}

/** RevenueCat's refund of a purchase (a CANCELLATION by customer support with a negative price). */
function refundOf(purchase: Delivery, more: Record<string, unknown> = {}): Delivery {
  const { event } = purchase;
  return new Subscription(String(event.app_user_id), String(event.product_id)).event(
    "CANCELLATION__rc-docs-refund",
    { transaction_id: event.transaction_id, store: event.store, ...more },
  );
}

function reversalOf(purchase: Delivery): Delivery {
  const { event } = purchase;
  return new Subscription(String(event.app_user_id), String(event.product_id)).event(
    "REFUND_REVERSED__rc-docs",
    { transaction_id: event.transaction_id, store: event.store },
  );
}

async function refundEntry(userId: string) {
  return (await entriesOf(t, userId)).find((entry) => entry.kind === "REFUND");
}

describe(`refunds of subscription credits through the webhook on ${driverName}`, () => {
  it("row 23: after a TRANSFER, a refund of a period granted to the old user takes from the old user's lot", async () => {
    const oldUser = newUserId();
    const newUser = newUserId();
    const sub = new Subscription(oldUser);
    const now = Date.now();
    const period = sub.period("INITIAL_PURCHASE", now - DAY, now + 29 * DAY);
    await send(t, period);
    const transfer = sub.event("TRANSFER__rc-docs", {
      transferred_from: [oldUser],
      transferred_to: [newUser],
    });
    expect(await send(t, transfer)).toMatchObject({ outcome: "ignored" });
    expect(await balanceOf(t, oldUser)).toBe(1000);
    // The refund names the new owner; the tokens it takes back are the old owner's.
    const refund = refundOf(period, {
      app_user_id: newUser,
      aliases: [newUser],
      original_app_user_id: newUser,
    });
    expect(await send(t, refund)).toMatchObject({ outcome: "refunded" });
    expect(await balanceOf(t, oldUser)).toBe(0);
    expect(await balanceOf(t, newUser)).toBe(0);
    expect(await lotsOf(t, oldUser)).toMatchObject([{ remaining: 0 }]);
  });

  it("row 24: a refund after half was spent: its own lot first, then other lots, clamped at 0 with the shortfall recorded", async () => {
    const sub = new Subscription(newUserId());
    const now = Date.now();
    const period = sub.period("INITIAL_PURCHASE", now - DAY, now + 29 * DAY);
    await send(t, period);
    await send(t, pack(sub.userId));
    await spend(t, sub.userId, 500);
    expect((await lotsOf(t, sub.userId)).map((l) => l.remaining)).toEqual([500, 300]);
    expect(await send(t, refundOf(period))).toMatchObject({ outcome: "refunded" });
    expect((await refundEntry(sub.userId))?.amount).toBe(-800);
    expect((await refundEntry(sub.userId))?.metadata).toMatchObject({
      target: 1000,
      fromLot: 500,
      alreadyExpired: 0,
      fromOthers: 300,
      shortfall: 200,
    });
    expect((await lotsOf(t, sub.userId)).map((l) => l.remaining)).toEqual([0, 0]);
    expect(await balanceOf(t, sub.userId)).toBe(0);
  });

  it("row 24: a partial refund takes the refunded share of the period's grant, rounded up", async () => {
    const sub = new Subscription(newUserId());
    const now = Date.now();
    const period = sub.period("INITIAL_PURCHASE", now - DAY, now + 29 * DAY, { price: 9.99 });
    await send(t, period);
    await send(t, refundOf(period, { price: -3.33 }));
    // ceil(1000 × 3.33 / 9.99) = 334.
    expect((await refundEntry(sub.userId))?.metadata).toMatchObject({ target: 334, fromLot: 334 });
    expect(await balanceOf(t, sub.userId)).toBe(666);
  });

  it("row 25: a refund of a period whose lot already expired counts its unused expired tokens as returned", async () => {
    const sub = new Subscription(newUserId());
    const now = Date.now();
    const end = now + 3000;
    const first = sub.period("INITIAL_PURCHASE", now - 30 * DAY, end);
    await send(t, first);
    await send(t, sub.period("RENEWAL", now, end + 30 * DAY));
    await spend(t, sub.userId, 400);
    await until(end);
    await sweep(t, sub.userId);
    expect((await lotsOf(t, sub.userId)).map((l) => [l.remaining, l.expired])).toEqual([
      [0, 600],
      [1000, 0],
    ]);
    expect(await send(t, refundOf(first))).toMatchObject({ outcome: "refunded" });
    expect((await refundEntry(sub.userId))?.metadata).toMatchObject({
      target: 1000,
      fromLot: 0,
      alreadyExpired: 600,
      fromOthers: 400,
      shortfall: 0,
    });
    expect(await balanceOf(t, sub.userId)).toBe(600);
  });

  it("row 27: REFUND_REVERSED gives back exactly what the refund took, into the lots it came from", async () => {
    const sub = new Subscription(newUserId());
    const now = Date.now();
    const period = sub.period("INITIAL_PURCHASE", now - DAY, now + 29 * DAY);
    await send(t, period);
    await send(t, pack(sub.userId));
    await spend(t, sub.userId, 500);
    await send(t, refundOf(period));
    expect(await balanceOf(t, sub.userId)).toBe(0);
    expect(await send(t, reversalOf(period))).toMatchObject({ outcome: "refund_reversed" });
    expect((await lotsOf(t, sub.userId)).map((l) => l.remaining)).toEqual([500, 300]);
    expect(await balanceOf(t, sub.userId)).toBe(800);
    // A second reversal changes nothing.
    expect(await send(t, reversalOf(period))).toMatchObject({ outcome: "duplicate" });
    expect(await balanceOf(t, sub.userId)).toBe(800);
  });

  it("row 27: what a reversal gives back to a lot past its end expires at once (REFUND_REVERSAL + EXPIRE, net 0)", async () => {
    const sub = new Subscription(newUserId());
    const now = Date.now();
    const end = now + 3000;
    const period = sub.period("INITIAL_PURCHASE", now - 30 * DAY, end);
    await send(t, period);
    await send(t, refundOf(period));
    expect(await balanceOf(t, sub.userId)).toBe(0);
    await until(end);
    expect(await send(t, reversalOf(period))).toMatchObject({ outcome: "refund_reversed" });
    expect((await entriesOf(t, sub.userId)).map((e) => [e.kind, e.amount])).toEqual([
      ["PURCHASE", 1000],
      ["REFUND", -1000],
      ["REFUND_REVERSAL", 1000],
      ["EXPIRE", -1000],
    ]);
    expect(await balanceOf(t, sub.userId)).toBe(0);
  });

  it("row 28: a refund of a pack after part was spent: its own lot first, then the expiring lots before non-expiring ones", async () => {
    const userId = newUserId();
    const bought = pack(userId, "pack_500");
    await send(t, bought);
    await spend(t, userId, 300);
    await send(t, pack(userId, "pack_300"));
    const now = Date.now();
    await send(t, new Subscription(userId).period("INITIAL_PURCHASE", now - DAY, now + 29 * DAY));
    expect((await lotsOf(t, userId)).map((l) => l.remaining)).toEqual([200, 300, 1000]);
    expect(await send(t, refundOf(bought))).toMatchObject({ outcome: "refunded" });
    expect((await refundEntry(userId))?.metadata).toMatchObject({
      target: 500,
      fromLot: 200,
      fromOthers: 300,
      shortfall: 0,
    });
    // The other pack never expires: the 300 came from the subscription's lot.
    expect((await lotsOf(t, userId)).map((l) => l.remaining)).toEqual([0, 300, 700]);
    expect(await balanceOf(t, userId)).toBe(1000);
  });
});
