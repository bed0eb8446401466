import { eq } from "drizzle-orm";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { MAX_BALANCE, revenuecatEventsTable } from "../../src/db/schema.js";
import { createLedgerService } from "../../src/modules/ledger/ledger.service.js";
import { createPurchasesService } from "../../src/modules/purchases/purchases.service.js";
import { revenuecatDeliverySchema } from "../../src/modules/purchases/revenuecat.event.js";
import { newUserId } from "../helpers/app.js";
import { driverName, useTestDatabase } from "../helpers/database.js";
import { balanceOf } from "../helpers/ledger.js";
import { type Delivery, fixture } from "../helpers/revenuecat.js";

// A purchase the balance cannot take (it would pass MAX_BALANCE) is recorded as failed, for an
// operator, whichever way it comes: batched with other deliveries, or by webhooks:reprocess. Either
// way the deliveries beside it are carried out.

const database = useTestDatabase();
const logger = pino({ level: "silent" });
const LIMIT_DETAIL = "the balance would exceed its limit";

function services(productTokenMap: Record<string, number>) {
  const handle = database.current().handle;
  const ledger = createLedgerService({ database: handle, logger });
  const config = { productTokenMap, environments: ["PRODUCTION", "SANDBOX"] };
  return { ledger, purchases: createPurchasesService({ database: handle, ledger, logger, config }) };
}

/** A user this close to MAX_BALANCE. */
async function nearTheCap(room: number): Promise<string> {
  const userId = newUserId();
  const { ledger } = services({});
  await ledger.grant({ userId, amount: MAX_BALANCE - room, reason: "setup" }, "test");
  return userId;
}

function purchase(userId: string, productId = "token_pack_small"): Delivery {
  return fixture("NON_RENEWING_PURCHASE__rc-docs", { app_user_id: userId, product_id: productId });
}

const parsed = (body: Delivery) => revenuecatDeliverySchema.parse(body).event;

async function recorded(eventId: string) {
  const [row] = await database
    .current()
    .handle.db.select()
    .from(revenuecatEventsTable)
    .where(eq(revenuecatEventsTable.eventId, eventId));
  return row;
}

describe(`a purchase credit at the balance cap on ${driverName}`, () => {
  it("batched: the full balance's purchase is recorded failed, and its neighbours in the batch are credited", async () => {
    const { purchases } = services({ token_pack_small: 100 });
    const full = await nearTheCap(50);
    const others = [newUserId(), newUserId(), newUserId()];
    const bodies = [
      purchase(others[0] as string),
      purchase(full),
      ...others.slice(1).map((u) => purchase(u)),
    ];
    // Delivered in one turn of the event loop: one batch, one statement.
    const outcomes = await Promise.all(
      bodies.map((body) => purchases.handleDelivery(JSON.stringify(body), parsed(body))),
    );
    expect(outcomes.map((o) => o.outcome)).toEqual(["credited", "failed", "credited", "credited"]);
    expect(outcomes[1]).toMatchObject({ detail: LIMIT_DETAIL, userId: full, atBalanceLimit: true });
    expect(await balanceOf(database.current().handle.db, full)).toBe(MAX_BALANCE - 50);
    for (const userId of others) expect(await balanceOf(database.current().handle.db, userId)).toBe(100);
    expect(await recorded((bodies[1] as Delivery).event.id)).toMatchObject({
      outcome: "failed",
      detail: LIMIT_DETAIL,
    });
    // A redelivery of the failed event is processed again, and fails again the same way.
    const again = await purchases.handleDelivery(JSON.stringify(bodies[1]), parsed(bodies[1] as Delivery));
    expect(again).toMatchObject({ outcome: "failed", detail: LIMIT_DETAIL });
  });

  it("reprocess: an event the balance cannot take is recorded failed, and the run goes on to the next", async () => {
    const before = services({});
    const full = await nearTheCap(50);
    const others = [newUserId(), newUserId()];
    // Kept as unmapped (the map does not know the product yet), the full balance's first.
    const bodies = [purchase(full, "coins_999"), ...others.map((u) => purchase(u, "coins_999"))];
    for (const body of bodies) {
      expect((await before.purchases.handleDelivery(JSON.stringify(body), parsed(body))).outcome).toBe(
        "unmapped",
      );
    }
    const { purchases } = services({ coins_999: 999 });
    const summary = await purchases.reprocessAll();
    expect(summary.outcomes).toMatchObject({ failed: 1, credited: 2 });
    expect(await balanceOf(database.current().handle.db, full)).toBe(MAX_BALANCE - 50);
    for (const userId of others) expect(await balanceOf(database.current().handle.db, userId)).toBe(999);
    expect(await recorded((bodies[0] as Delivery).event.id)).toMatchObject({
      outcome: "failed",
      detail: LIMIT_DETAIL,
    });
    // Still reprocessable: with room on the balance, a later run credits it once.
    const left = await purchases.reprocessable();
    expect(bodies.map((body) => left.includes(body.event.id))).toEqual([true, false, false]);
  });

  it("release: a reversal that would release a held purchase past the cap is recorded failed and changes nothing", async () => {
    const { purchases, ledger } = services({ token_pack_small: 100 });
    const userId = newUserId();
    const bought = purchase(userId);
    const same = { transaction_id: bought.event.transaction_id, store: bought.event.store };
    const refund = fixture("CANCELLATION__rc-docs-refund", {
      app_user_id: userId,
      aliases: [userId],
      ...same,
    });
    const reversal = fixture("REFUND_REVERSED__rc-docs", { app_user_id: userId, ...same });
    const deliver = (body: Delivery) => purchases.handleDelivery(JSON.stringify(body), parsed(body));
    expect((await deliver(refund)).outcome).toBe("unmatched");
    expect((await deliver(bought)).outcome).toBe("held");
    await ledger.grant({ userId, amount: MAX_BALANCE - 50, reason: "setup" }, "test");
    expect(await deliver(reversal)).toMatchObject({ outcome: "failed", detail: LIMIT_DETAIL });
    expect(await balanceOf(database.current().handle.db, userId)).toBe(MAX_BALANCE - 50);
    expect((await recorded(bought.event.id))?.outcome).toBe("held");
  });

  it("refund reversed: giving back a refund past the cap is recorded failed and changes nothing", async () => {
    const { purchases, ledger } = services({ token_pack_small: 100 });
    const userId = newUserId();
    const bought = purchase(userId);
    const same = { transaction_id: bought.event.transaction_id, store: bought.event.store };
    const refund = fixture("CANCELLATION__rc-docs-refund", {
      app_user_id: userId,
      aliases: [userId],
      ...same,
    });
    const reversal = fixture("REFUND_REVERSED__rc-docs", { app_user_id: userId, ...same });
    const deliver = (body: Delivery) => purchases.handleDelivery(JSON.stringify(body), parsed(body));
    expect((await deliver(bought)).outcome).toBe("credited");
    expect((await deliver(refund)).outcome).toBe("refunded");
    await ledger.grant({ userId, amount: MAX_BALANCE - 50, reason: "setup" }, "test");
    expect(await deliver(reversal)).toMatchObject({ outcome: "failed", detail: LIMIT_DETAIL });
    expect(await balanceOf(database.current().handle.db, userId)).toBe(MAX_BALANCE - 50);
    expect((await recorded(reversal.event.id))?.outcome).toBe("failed");
  });
});
