import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newUserId, startTestApp, type TestApp } from "../helpers/app.js";
import { driverName, openTestDatabase, useTestDatabase } from "../helpers/database.js";
import { fundUser, SPEND } from "../helpers/ledger.js";
import { deliver, fixture } from "../helpers/revenuecat.js";

const db = useTestDatabase();
const grant = (t: TestApp, userId: string, amount: number) => fundUser(t, amount, userId);

describe(`metrics, logs and health on ${driverName}`, () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ METRICS_TOKEN: "metrics-token-for-tests" }, db.current());
  });
  afterAll(() => t.close());

  it("exposes the seed's signals at /metrics behind METRICS_TOKEN", async () => {
    const userId = newUserId();
    await grant(t, userId, 2);
    const token = await t.token(userId);
    await t.gql(SPEND, { input: { amount: 1, description: "ok" } }, token);
    await t.gql(SPEND, { input: { amount: 5, description: "too much" } }, token);
    await t.gql(SPEND, { input: { amount: 0, description: "invalid" } }, token);
    await deliver(
      t.url,
      fixture("NON_RENEWING_PURCHASE__rc-docs", { app_user_id: userId, product_id: "token_pack_small" }),
    );

    expect((await fetch(`${t.url}/metrics`)).status).toBe(401);
    const response = await fetch(`${t.url}/metrics`, {
      headers: { authorization: "Bearer metrics-token-for-tests" },
    });
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).toMatch(/token_spend_total\{outcome="success"\} [1-9]/);
    expect(text).toMatch(/token_spend_total\{outcome="insufficient"\} [1-9]/);
    expect(text).toMatch(/token_spend_total\{outcome="invalid"\} [1-9]/);
    expect(text).toMatch(/token_webhook_events_total\{type="NON_RENEWING_PURCHASE",outcome="credited"\} 1/);
    expect(text).toMatch(/token_webhook_duration_seconds_count [1-9]/);
    expect(text).toMatch(/graphql_operation_duration_seconds_count\{operation="S"\} [1-9]/);
    expect(text).toContain("token_ws_connections");
    expect(text).toContain("process_resident_memory_bytes");
  });

  it("puts the request id on every line logged while serving a request, and never the token", async () => {
    const userId = newUserId();
    await grant(t, userId, 5);
    const token = await t.token(userId);
    const before = t.logs.lines.length;
    const response = await fetch(`${t.url}/graphql`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${token}`,
        "x-request-id": "req-abc-123",
      },
      body: JSON.stringify({ query: SPEND, variables: { input: { amount: 1, description: "logged" } } }),
    });
    expect(response.headers.get("x-request-id")).toBe("req-abc-123");
    const lines = t.logs.lines.slice(before);
    const spendLine = lines.find((line) => String(line.msg).startsWith(`User ${userId} spent`));
    expect(spendLine?.requestId).toBe("req-abc-123");

    await fetch(`${t.url}/api/v1/tokens/spend`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${token}`,
        "x-request-id": "req-rest-1",
      },
      body: JSON.stringify({ amount: 1, description: "rest" }),
    });
    const purchase = fixture("NON_RENEWING_PURCHASE__rc-docs", {
      app_user_id: userId,
      product_id: "token_pack_small",
    });
    await deliver(t.url, purchase, { headers: { "x-request-id": "req-hook-1" } });
    const later = t.logs.lines.slice(before);
    expect(
      later.find((line) => line.requestId === "req-rest-1" && String(line.msg).includes("spent")),
    ).toBeDefined();
    expect(
      later.find(
        (line) => line.requestId === "req-hook-1" && String(line.msg).startsWith("Successfully processed"),
      ),
    ).toBeDefined();
    expect(t.logs.raw.join("\n")).not.toContain(token);
  });

  it("logs an unexpected GraphQL error with the request id and answers only 'Unexpected error.'", async () => {
    const token = await t.token(newUserId());
    await db.current().handle.db.execute(sql.raw("ALTER TABLE token_balances RENAME TO token_balances_away"));
    try {
      const response = await fetch(`${t.url}/graphql`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: `Bearer ${token}`,
          "x-request-id": "req-err-1",
        },
        body: JSON.stringify({ query: "{ balance { balance } }" }),
      });
      const body = (await response.json()) as { errors: { message: string; extensions: { code: string } }[] };
      expect(body.errors[0]).toMatchObject({
        message: "Unexpected error.",
        extensions: { code: "INTERNAL_SERVER_ERROR" },
      });
      const line = t.logs.lines.find(
        (entry) => entry.requestId === "req-err-1" && entry.msg === "graphql error",
      );
      expect(line).toBeDefined();
    } finally {
      await db
        .current()
        .handle.db.execute(sql.raw("ALTER TABLE token_balances_away RENAME TO token_balances"));
    }
  });

  it("/health answers while the process lives; /ready is 503 until the database is migrated", async () => {
    const empty = await openTestDatabase({ migrated: false });
    const app = await startTestApp({}, empty);
    try {
      expect((await fetch(`${app.url}/health`)).status).toBe(200);
      expect(await (await fetch(`${app.url}/ready`)).json()).toEqual({
        status: "unavailable",
        reason: "database not reachable or not migrated",
      });
      expect((await fetch(`${t.url}/ready`)).status).toBe(200);
    } finally {
      await app.close();
      await empty.close();
    }
  });
});
