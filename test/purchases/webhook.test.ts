import { createHmac } from "node:crypto";
import { eq, sql } from "drizzle-orm";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { revenuecatEventsTable } from "../../src/db/schema.js";
import { getBalance, listEntries } from "../../src/modules/ledger/ledger.queries.js";
import { createLedgerService } from "../../src/modules/ledger/ledger.service.js";
import { createPurchasesService } from "../../src/modules/purchases/purchases.service.js";
import { newUserId, WEBHOOK_SECRET } from "../helpers/app.js";
import { driverName, openTestDatabase } from "../helpers/database.js";
import { balanceOf as balanceOfUser } from "../helpers/ledger.js";
import { type Delivery, deliver, FIXTURE_NAMES, fixture } from "../helpers/revenuecat.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

const PRODUCT_TOKEN_MAP = {
  pro_monthly: 500,
  pro_annual: 6000,
  token_pack_small: 100,
  token_pack_medium: 500,
  token_pack_large: 1200,
  "com.subscription.weekly": 50,
  "com.revenuecat.myapp.monthly": 300,
  "2100_tokens": 2100,
};

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer({ PRODUCT_TOKEN_MAP: JSON.stringify(PRODUCT_TOKEN_MAP) });
});
afterAll(() => t.close());

const balanceOf = (userId: string) => balanceOfUser(t.db.handle.db, userId);

async function recorded(eventId: string) {
  const [row] = await t.db.handle.db
    .select()
    .from(revenuecatEventsTable)
    .where(eq(revenuecatEventsTable.eventId, eventId));
  return row;
}

function purchase(
  userId: string,
  productId = "token_pack_large",
  extra: Record<string, unknown> = {},
): Delivery {
  return fixture("NON_RENEWING_PURCHASE__rc-docs", { app_user_id: userId, product_id: productId, ...extra });
}

async function spend(userId: string, amount: number): Promise<void> {
  const token = await t.token(userId);
  const result = await t.gql(
    "mutation S($input: SpendTokensInput!) { spendTokens(input: $input) { success } }",
    { input: { amount, description: "spent before the refund" } },
    token,
  );
  expect(result.data).toEqual({ spendTokens: { success: true } });
}

const EXPECTED: Record<string, string> = {
  INITIAL_PURCHASE__rc_docs: "credited",
  RENEWAL__rc_docs: "credited",
  NON_RENEWING_PURCHASE__rc_docs: "credited",
  CANCELLATION__rc_docs: "ignored",
  CANCELLATION__rc_docs_refund: "unmatched",
  REFUND_REVERSED__rc_docs: "unmatched",
  TEST__rudderstack_transformer: "ignored",
};

describe(`RevenueCat webhook on ${driverName}`, () => {
  it.each(FIXTURE_NAMES)("answers 200 and records %s", async (name) => {
    const body = fixture(name);
    const userId = typeof body.event.app_user_id === "string" ? body.event.app_user_id : null;
    const before = userId ? await balanceOf(userId) : 0;
    const response = await deliver(t.url, body);
    expect(response.status).toBe(200);
    const expected = EXPECTED[name.replace(/-/g, "_")] ?? "ignored";
    expect(response.body.outcome).toBe(expected);
    const row = await recorded(body.event.id);
    expect(row).toMatchObject({ type: body.event.type, outcome: expected });
    expect(JSON.parse(row?.rawBody ?? "{}")).toEqual(body);
    if (userId && expected !== "credited") expect(await balanceOf(userId)).toBe(before);
  });

  it("credits a token pack as a PURCHASE entry visible in the user's transactions, and logs the seed's line", async () => {
    const userId = newUserId();
    const body = purchase(userId, "token_pack_medium");
    expect((await deliver(t.url, body)).body.outcome).toBe("credited");
    expect(await balanceOf(userId)).toBe(500);
    const token = await t.token(userId);
    const result = await t.gql<{
      transactions: {
        edges: { node: { amount: number; kind: string; metadata: Record<string, unknown> } }[];
      };
    }>("{ transactions { edges { node { amount kind metadata } } } }", {}, token);
    const node = result.data?.transactions.edges[0]?.node;
    expect(node).toMatchObject({ amount: 500, kind: "PURCHASE" });
    expect(node?.metadata).toMatchObject({
      eventId: body.event.id,
      transactionId: body.event.transaction_id,
    });
    await expect
      .poll(() => t.logs.messages())
      .toContain(`Successfully processed token purchase: 500 tokens for user ${userId}`);
  });

  it("credits INITIAL_PURCHASE and RENEWAL of a mapped subscription", async () => {
    const userId = newUserId();
    await deliver(
      t.url,
      fixture("INITIAL_PURCHASE__rc-docs", { app_user_id: userId, product_id: "pro_monthly" }),
    );
    await deliver(t.url, fixture("RENEWAL__rc-docs", { app_user_id: userId, product_id: "pro_monthly" }));
    expect(await balanceOf(userId)).toBe(1000);
  });

  it("ten concurrent deliveries of one event credit once and all answer 200", async () => {
    const userId = newUserId();
    const body = purchase(userId);
    const responses = await Promise.all(Array.from({ length: 10 }, () => deliver(t.url, body)));
    expect(responses.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(responses.filter((r) => r.body.outcome === "credited")).toHaveLength(1);
    expect(responses.filter((r) => r.body.outcome === "duplicate")).toHaveLength(9);
    expect(await balanceOf(userId)).toBe(1200);
    expect((await recorded(body.event.id))?.deliveries).toBe(10);
  });

  it("one store transaction never credits twice, also under another event id, also concurrently", async () => {
    const userId = newUserId();
    const first = purchase(userId);
    const twins = Array.from({ length: 5 }, () => ({
      ...first,
      event: { ...first.event, id: `${first.event.id}-${Math.random()}` },
    }));
    const responses = await Promise.all([first, ...twins].map((body) => deliver(t.url, body)));
    expect(responses.every((r) => r.status === 200)).toBe(true);
    expect(responses.filter((r) => r.body.outcome === "credited")).toHaveLength(1);
    expect(await balanceOf(userId)).toBe(1200);
  });

  it("a refund takes back what is left, records the shortfall, is not applied twice, and REFUND_REVERSED gives it back", async () => {
    const userId = newUserId();
    const bought = purchase(userId, "token_pack_small");
    await deliver(t.url, bought);
    await spend(userId, 70);
    const refund = fixture("CANCELLATION__rc-docs-refund", {
      app_user_id: userId,
      aliases: [userId],
      transaction_id: bought.event.transaction_id,
      store: bought.event.store,
    });
    expect((await deliver(t.url, refund)).body.outcome).toBe("refunded");
    expect(await balanceOf(userId)).toBe(0);
    const [entry] = await listEntries(t.db.handle.db, userId, { limit: 1 });
    expect(entry).toMatchObject({ kind: "REFUND", amount: -30, balanceAfter: 0 });
    expect(entry?.metadata).toMatchObject({ refundedTokens: 100, recovered: 30, shortfall: 70 });

    // The same refund redelivered, and the same refund under a new event id, change nothing.
    expect((await deliver(t.url, refund)).body.outcome).toBe("duplicate");
    const again = { ...refund, event: { ...refund.event, id: `${refund.event.id}-again` } };
    expect((await deliver(t.url, again)).body.outcome).toBe("duplicate");
    expect(await balanceOf(userId)).toBe(0);

    const reversed = fixture("REFUND_REVERSED__rc-docs", {
      app_user_id: userId,
      transaction_id: bought.event.transaction_id,
      store: bought.event.store,
    });
    expect((await deliver(t.url, reversed)).body.outcome).toBe("refund_reversed");
    expect(await balanceOf(userId)).toBe(30);
    expect((await deliver(t.url, reversed)).body.outcome).toBe("duplicate");
    expect(await balanceOf(userId)).toBe(30);
  });

  it("a CANCELLATION with a negative price is a refund even with another cancel_reason", async () => {
    const userId = newUserId();
    const bought = purchase(userId, "token_pack_small");
    await deliver(t.url, bought);
    const refund = fixture("CANCELLATION__rc-docs-refund", {
      app_user_id: userId,
      cancel_reason: "DEVELOPER_INITIATED",
      transaction_id: bought.event.transaction_id,
      store: bought.event.store,
    });
    expect((await deliver(t.url, refund)).body.outcome).toBe("refunded");
    expect(await balanceOf(userId)).toBe(0);
  });

  it("a refund that overtakes its purchase keeps the purchase from crediting", async () => {
    const userId = newUserId();
    const bought = purchase(userId, "token_pack_small");
    const refund = fixture("CANCELLATION__rc-docs-refund", {
      app_user_id: userId,
      transaction_id: bought.event.transaction_id,
      store: bought.event.store,
    });
    expect((await deliver(t.url, refund)).body.outcome).toBe("unmatched");
    expect((await deliver(t.url, bought)).body.outcome).toBe("held");
    expect(await balanceOf(userId)).toBe(0);
  });

  it("an anonymous app_user_id credits the first known alias, else original_app_user_id, else itself", async () => {
    const known = newUserId();
    const anonymous = `$RCAnonymousID:${newUserId("anon")}`;
    await deliver(t.url, purchase(anonymous, "token_pack_small", { aliases: [anonymous, known] }));
    expect(await balanceOf(known)).toBe(100);
    expect(await balanceOf(anonymous)).toBe(0);

    const original = newUserId();
    await deliver(
      t.url,
      purchase(anonymous, "token_pack_small", { aliases: [anonymous], original_app_user_id: original }),
    );
    expect(await balanceOf(original)).toBe(100);

    const alone = `$RCAnonymousID:${newUserId("alone")}`;
    await deliver(
      t.url,
      purchase(alone, "token_pack_small", { aliases: [alone], original_app_user_id: alone }),
    );
    expect(await balanceOf(alone)).toBe(100);
  });

  it("TRANSFER moves no tokens", async () => {
    const from = newUserId();
    const to = newUserId();
    await deliver(t.url, purchase(from, "token_pack_small"));
    const transfer = fixture("TRANSFER__rc-docs", { transferred_from: [from], transferred_to: [to] });
    expect((await deliver(t.url, transfer)).body.outcome).toBe("ignored");
    expect(await balanceOf(from)).toBe(100);
    expect(await balanceOf(to)).toBe(0);
  });

  it("accepts unknown event types and unknown fields without crediting", async () => {
    const userId = newUserId();
    const body = purchase(userId, "token_pack_small", {
      type: "PURCHASE_REDEEMED",
      brand_new_field: { x: 1 },
    });
    const response = await deliver(t.url, body);
    expect(response).toMatchObject({ status: 200, body: { outcome: "ignored" } });
    expect(await balanceOf(userId)).toBe(0);
  });

  it("keeps an unmapped purchase, and reprocessing with a fixed map credits it exactly once", async () => {
    const userId = newUserId();
    const body = purchase(userId, "coins_999");
    expect((await deliver(t.url, body)).body.outcome).toBe("unmapped");
    expect(await balanceOf(userId)).toBe(0);
    const logger = pino({ level: "silent" });
    const fixed = createPurchasesService({
      database: t.db.handle,
      ledger: createLedgerService({ database: t.db.handle, logger }),
      logger,
      config: { productTokenMap: { coins_999: 999 }, environments: ["PRODUCTION", "SANDBOX"] },
    });
    expect(await fixed.reprocessable()).toContain(body.event.id);
    const runs = await Promise.all([fixed.reprocess(body.event.id), fixed.reprocess(body.event.id)]);
    expect(runs.filter((run) => run?.outcome === "credited")).toHaveLength(1);
    expect(await fixed.reprocess(body.event.id)).toBeNull();
    expect(await balanceOf(userId)).toBe(999);
    expect((await recorded(body.event.id))?.outcome).toBe("credited");
  });

  it("accepts the secret with or without 'Bearer ', and refuses a missing or wrong one, storing nothing", async () => {
    const userId = newUserId();
    const wrong = [
      null,
      "",
      "Bearer wrong",
      `Bearer ${WEBHOOK_SECRET}x`,
      WEBHOOK_SECRET.slice(1),
      `Basic ${WEBHOOK_SECRET}`,
    ];
    for (const authorization of wrong) {
      const body = purchase(userId);
      const response = await deliver(t.url, body, { authorization });
      expect(response.status).toBe(401);
      expect(await recorded(body.event.id)).toBeUndefined();
    }
    expect(await balanceOf(userId)).toBe(0);
    expect((await deliver(t.url, purchase(userId), { authorization: WEBHOOK_SECRET })).status).toBe(200);
    expect(await balanceOf(userId)).toBe(1200);
  });

  it("refuses oversized (413), malformed (400) and incomplete (400) bodies, storing nothing", async () => {
    const userId = newUserId();
    const big = purchase(userId, "token_pack_small", { padding: "x".repeat(1024 * 1024) });
    expect((await deliver(t.url, big)).status).toBe(413);
    expect((await deliver(t.url, "{not json")).status).toBe(400);
    const noId = purchase(userId, "token_pack_small");
    noId.event.id = undefined as never;
    expect((await deliver(t.url, noId)).status).toBe(400);
    const noType = purchase(userId, "token_pack_small");
    noType.event.type = undefined as never;
    expect((await deliver(t.url, noType)).status).toBe(400);
    expect((await deliver(t.url, { api_version: "1.0" })).status).toBe(400);
    expect(await balanceOf(userId)).toBe(0);
    expect(await recorded(big.event.id)).toBeUndefined();
    expect(await recorded(noType.event.id)).toBeUndefined();
  });

  it("never logs the Authorization header or the raw body", async () => {
    const userId = newUserId();
    const logged = t.logs.raw.length;
    await deliver(
      t.url,
      purchase(userId, "token_pack_small", {
        subscriber_attributes: { $email: { value: "private@example.com", updated_at_ms: 1 } },
      }),
    );
    // A server process's log lines may arrive after its answer: wait for the delivery's.
    await expect.poll(() => t.logs.raw.length).toBeGreaterThan(logged);
    const everything = t.logs.raw.join("\n");
    expect(everything).not.toContain(WEBHOOK_SECRET);
    expect(everything).not.toContain("private@example.com");
  });
});

describe(`RevenueCat webhook policies on ${driverName}`, () => {
  it("production policy: SANDBOX deliveries are recorded as ignored and credit nothing", async () => {
    const app = await startTestServer({ REVENUECAT_ENVIRONMENTS: "PRODUCTION" }, t.db);
    try {
      const userId = newUserId();
      const sandbox = purchase(userId, "token_pack_small", { environment: "SANDBOX" });
      expect((await deliver(app.url, sandbox)).body).toMatchObject({ outcome: "ignored" });
      expect(await balanceOf(userId)).toBe(0);
      expect((await deliver(app.url, purchase(userId, "token_pack_small"))).body.outcome).toBe("credited");
      expect(await balanceOf(userId)).toBe(100);
    } finally {
      await app.close();
    }
  });

  it("development policy credits SANDBOX purchases", async () => {
    const userId = newUserId();
    await deliver(t.url, purchase(userId, "token_pack_small", { environment: "SANDBOX" }));
    expect(await balanceOf(userId)).toBe(100);
  });

  it("with REVENUECAT_WEBHOOK_HMAC_SECRET, also requires an HMAC-SHA256 of the raw body", async () => {
    const hmacSecret = "hmac-secret-for-tests";
    const app = await startTestServer({ REVENUECAT_WEBHOOK_HMAC_SECRET: hmacSecret }, t.db);
    try {
      const userId = newUserId();
      const raw = JSON.stringify(purchase(userId, "token_pack_small"));
      expect((await deliver(app.url, raw)).status).toBe(401);
      const badSignature = createHmac("sha256", "other").update(raw).digest("hex");
      expect(
        (await deliver(app.url, raw, { headers: { "x-revenuecat-signature": badSignature } })).status,
      ).toBe(401);
      const signature = createHmac("sha256", hmacSecret).update(raw).digest("hex");
      expect((await deliver(app.url, raw, { headers: { "x-revenuecat-signature": signature } })).status).toBe(
        200,
      );
      expect(await balanceOf(userId)).toBe(100);
    } finally {
      await app.close();
    }
  });

  it("answers 5xx when the database fails, so RevenueCat retries, and the retry credits once", async () => {
    const database = await openTestDatabase();
    const app = await startTestServer({}, database);
    const userId = newUserId();
    const body = purchase(userId, "token_pack_small");
    // Make every ledger write fail the way a broken database would, then heal it.
    await database.handle.db.execute(
      sql.raw("ALTER TABLE token_transactions RENAME TO token_transactions_away"),
    );
    try {
      const failed = await deliver(app.url, body);
      expect(failed.status).toBeGreaterThanOrEqual(500);
      await database.handle.db.execute(
        sql.raw("ALTER TABLE token_transactions_away RENAME TO token_transactions"),
      );
      const retried = await deliver(app.url, body);
      expect(retried).toMatchObject({ status: 200, body: { outcome: "credited" } });
      expect(await deliver(app.url, body)).toMatchObject({ status: 200, body: { outcome: "duplicate" } });
      expect((await getBalance(database.handle.db, userId)).balance).toBe(100);
    } finally {
      await app.close();
      await database.close();
    }
  });
});
