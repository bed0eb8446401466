import { sql } from "drizzle-orm";
import pino from "pino";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";
import { createRevenuecatApi } from "../../src/modules/legacy/revenuecat-api.js";
import {
  createReconcileMetrics,
  createReconcileSchedule,
} from "../../src/modules/reconcile/reconcile-schedule.js";
import { newUserId, startTestApp, useTestApp } from "../helpers/app.js";
import { serverUrl } from "../helpers/database.js";
import { FakeRevenuecatApi } from "../helpers/fake-revenuecat-api.js";
import { deliver, fixture } from "../helpers/revenuecat.js";
import { balanceOf, PRODUCTS, purchasesOn, transactionId, v2Purchase } from "./helpers.js";

/** RECONCILE_INTERVAL: the sweep inside the service, one instance at a time, with its metrics. */
const t = useTestApp();
const fake = new FakeRevenuecatApi();
beforeAll(async () => {
  fake.products.push(...PRODUCTS);
  await fake.start();
});
afterAll(() => fake.stop());

const policy = { productTokenMap: { token_pack_small: 100 }, environments: ["PRODUCTION"] };

function schedule(apply: boolean) {
  const registry = new Registry();
  const metrics = createReconcileMetrics(registry);
  const sweep = createReconcileSchedule({
    database: t.db.handle,
    purchases: purchasesOn(t, policy),
    policy,
    api: createRevenuecatApi({
      baseUrl: fake.url,
      projectId: fake.projectId,
      apiKey: fake.apiKey,
      ratePerMinute: 60_000,
    }),
    intervalMinutes: 60,
    apply,
    logger: pino({ level: "silent" }),
    metrics,
  });
  return { sweep, registry };
}

describe("the scheduled reconcile sweep", () => {
  it("reconciles the users active in the last day, and counts outcomes and its last success", async () => {
    const userId = newUserId("sweep");
    const seen = transactionId();
    // Today's delivery makes the user recently active; a second purchase's webhook never came.
    const delivered = await deliver(
      t.url,
      fixture("NON_RENEWING_PURCHASE__rc-docs", {
        app_user_id: userId,
        aliases: [userId],
        transaction_id: seen,
        original_transaction_id: seen,
        product_id: "token_pack_small",
      }),
    );
    expect(delivered.body.outcome).toBe("credited");
    fake.customers.set(userId, {
      attributes: {},
      purchases: [v2Purchase(userId, { store_purchase_identifier: seen }), v2Purchase(userId)],
    });

    const dry = schedule(false);
    expect(await dry.sweep.sweep()).toBe("done");
    expect(await balanceOf(t, userId)).toBe(100);
    expect(await dry.registry.metrics()).toMatch(/token_reconcile_total\{outcome="missing_credit"\} [1-9]/);

    const applying = schedule(true);
    const before = Date.now() / 1000;
    expect(await applying.sweep.sweep()).toBe("done");
    expect(await balanceOf(t, userId)).toBe(200);
    const text = await applying.registry.metrics();
    expect(text).toMatch(/token_reconcile_total\{outcome="credited"\} [1-9]/);
    expect(text).toMatch(/token_reconcile_total\{outcome="sandbox"\} 0/);
    const last = Number(/^token_reconcile_last_success_timestamp_seconds (\S+)$/m.exec(text)?.[1]);
    expect(last).toBeGreaterThanOrEqual(Math.floor(before));
  });

  it.skipIf(!serverUrl)("skips while another instance holds the sweep's lock (PostgreSQL)", async () => {
    const { sweep } = schedule(true);
    await t.db.handle.db.transaction(async (tx) => {
      await tx.execute(
        sql`SELECT pg_advisory_xact_lock(hashtextextended('token-ledger:reconcile-sweep', 0))`,
      );
      expect(await sweep.sweep()).toBe("busy");
    });
    expect(await sweep.sweep()).toBe("done");
  });

  it("is off by default; on, it needs the API key and shows its metrics", async () => {
    expect(loadConfig({ NODE_ENV: "test" }).reconcile).toEqual({ intervalMinutes: 0, apply: false });
    expect(() => loadConfig({ NODE_ENV: "test", RECONCILE_INTERVAL: "1h" })).toThrow(ConfigError);
    expect(() => loadConfig({ NODE_ENV: "test", RECONCILE_INTERVAL: "soon" })).toThrow(/RECONCILE_INTERVAL/);
    const api = {
      REVENUECAT_API_URL: fake.url,
      REVENUECAT_API_KEY: fake.apiKey,
      REVENUECAT_PROJECT_ID: fake.projectId,
    };
    expect(
      loadConfig({ NODE_ENV: "test", RECONCILE_INTERVAL: "90m", ...api }).reconcile.intervalMinutes,
    ).toBe(90);
    const app = await startTestApp({ RECONCILE_INTERVAL: "1h", ...api }, t.db);
    try {
      const metrics = await (await fetch(`${app.url}/metrics`)).text();
      expect(metrics).toContain('token_reconcile_total{outcome="credited"} 0');
      expect(metrics).toContain("token_reconcile_last_success_timestamp_seconds 0");
    } finally {
      await app.close();
    }
    const off = await (await fetch(`${t.url}/metrics`)).text();
    expect(off).not.toContain("token_reconcile_total");
  });
});
