import { eq, sql } from "drizzle-orm";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { queryRows } from "../../src/db/client.js";
import { rateLimitsTable, revenuecatEventsTable } from "../../src/db/schema.js";
import { createLedgerService } from "../../src/modules/ledger/ledger.service.js";
import { createPurchasesService } from "../../src/modules/purchases/purchases.service.js";
import { createRetentionService } from "../../src/modules/retention/retention.service.js";
import { newUserId, useTestApp } from "../helpers/app.js";
import { driverName, useTestDatabase } from "../helpers/database.js";
import { balanceOf } from "../helpers/ledger.js";
import { deliver, fixture } from "../helpers/revenuecat.js";

const database = useTestDatabase();
const t = useTestApp({ PURGE_INTERVAL_MINUTES: "0" }, () => database.current());
const db = () => database.current().handle.db;
const retention = () =>
  createRetentionService({ db: db(), config: { webhookBodyDays: 30, rateLimitHours: 1 } });

async function stored(eventId: string) {
  const [row] = await db()
    .select()
    .from(revenuecatEventsTable)
    .where(eq(revenuecatEventsTable.eventId, eventId));
  if (!row) throw new Error(`event ${eventId} is not stored`);
  return row;
}

async function age(eventId: string, days: number): Promise<void> {
  await db().execute(
    sql`UPDATE revenuecat_events SET received_at = now() - ${`${days} days`}::interval WHERE event_id = ${eventId}`,
  );
}

/** A real delivery body (RevenueCat's documented NON_RENEWING_PURCHASE) with its $email attribute. */
function purchase(userId: string, productId = "token_pack_small") {
  return fixture("NON_RENEWING_PURCHASE__rc-docs", { app_user_id: userId, product_id: productId });
}

describe(`retention of webhook bodies on ${driverName}`, () => {
  it("reduces bodies older than the retention to the acted-on fields; the row keeps exactly-once", async () => {
    const userId = newUserId();
    const old = purchase(userId);
    const recent = purchase(userId, "token_pack_medium");
    expect((await deliver(t.url, old)).body.outcome).toBe("credited");
    expect((await deliver(t.url, recent)).body.outcome).toBe("credited");
    expect((await stored(old.event.id)).rawBody).toContain("firstlast@gmail.com");
    await age(old.event.id, 31);

    const first = await retention().purge();
    expect(first.webhookBodiesReduced).toBeGreaterThanOrEqual(1);
    const row = await stored(old.event.id);
    expect(row.rawBody).not.toContain("firstlast@gmail.com");
    expect(row.rawBody).not.toContain("subscriber_attributes");
    expect(row.rawBody).not.toContain("country_code");
    expect(JSON.parse(row.rawBody)).toMatchObject({
      reduced_for: "retention",
      event: { id: old.event.id, app_user_id: userId, transaction_id: old.event.transaction_id },
    });
    expect(row).toMatchObject({ outcome: "credited", transactionId: old.event.transaction_id });
    expect((await stored(recent.event.id)).rawBody).toContain("firstlast@gmail.com");

    // RevenueCat redelivering the reduced event changes nothing: exactly once holds without the body.
    expect((await deliver(t.url, old)).body.outcome).toBe("duplicate");
    expect(await balanceOf(db(), userId)).toBe(600);
    // A second purge finds nothing more of it to do.
    expect((await stored(old.event.id)).rawBody).toBe(row.rawBody);
    await retention().purge();
    expect((await stored(old.event.id)).rawBody).toBe(row.rawBody);
  });

  it("a reduced unmapped purchase is still credited by reprocessing once the map knows it", async () => {
    const userId = newUserId();
    const body = purchase(userId, "gems_777");
    expect((await deliver(t.url, body)).body.outcome).toBe("unmapped");
    await age(body.event.id, 45);
    await retention().purge();
    expect((await stored(body.event.id)).rawBody).not.toContain("firstlast@gmail.com");

    const ledger = createLedgerService({
      database: database.current().handle,
      logger: pino({ level: "silent" }),
    });
    const purchases = createPurchasesService({
      database: database.current().handle,
      ledger,
      logger: pino({ level: "silent" }),
      config: { productTokenMap: { gems_777: 777 }, environments: ["PRODUCTION", "SANDBOX"] },
    });
    expect((await purchases.reprocess(body.event.id))?.outcome).toBe("credited");
    expect(await balanceOf(db(), userId)).toBe(777);
  });
});

describe(`retention of rate-limit counters on ${driverName}`, () => {
  it("deletes counters expired longer than the retention and keeps the others", async () => {
    const address = `203.0.113.${Math.floor(Math.random() * 250)}-${newUserId()}`;
    const hour = 3_600_000;
    await db()
      .insert(rateLimitsTable)
      .values([
        { key: `authfail:${address}-old`, points: 3, expire: new Date(Date.now() - 2 * hour) },
        { key: `authfail:${address}-recent`, points: 3, expire: new Date(Date.now() - 10 * 60_000) },
        { key: `authfail:${address}-live`, points: 1, expire: new Date(Date.now() + 60_000) },
      ]);
    const summary = await retention().purge();
    expect(summary.rateLimitCountersDeleted).toBeGreaterThanOrEqual(1);
    const left = await queryRows<{ key: string }>(
      db(),
      sql`SELECT key FROM rate_limits WHERE key LIKE ${`authfail:${address}%`} ORDER BY key`,
    );
    expect(left.map((row) => row.key)).toEqual([`authfail:${address}-live`, `authfail:${address}-recent`]);
  });
});

describe(`the purge in a running server on ${driverName}`, () => {
  it("runs by itself shortly after start", async () => {
    const { startTestApp } = await import("../helpers/app.js");
    const userId = newUserId();
    const body = purchase(userId);
    expect((await deliver(t.url, body)).body.outcome).toBe("credited");
    await age(body.event.id, 40);
    const server = await startTestApp({ PURGE_INTERVAL_MINUTES: "60" }, database.current());
    try {
      const deadline = Date.now() + 30_000;
      while (!server.logs.messages().includes("purge: personal data past its retention removed")) {
        if (Date.now() > deadline) throw new Error("the server did not purge within 30 s");
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      expect((await stored(body.event.id)).rawBody).not.toContain("firstlast@gmail.com");
    } finally {
      await server.close();
    }
  });
});
