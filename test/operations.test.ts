import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newUserId, startTestApp, type TestApp } from "./helpers/app.js";
import { driverName, openTestDatabase, type TestDatabase } from "./helpers/database.js";
import { deliver, fixture } from "./helpers/revenuecat.js";

const SPEND = `mutation S($input: SpendTokensInput!) {
  spendTokens(input: $input) { success newBalance errorCode retryAfterSeconds message }
}`;

let database: TestDatabase;
beforeAll(async () => {
  database = await openTestDatabase();
});
afterAll(() => database.close());

async function grant(t: TestApp, userId: string, amount: number): Promise<void> {
  const admin = await t.token(newUserId("admin"), { admin: true });
  const result = await t.gql(
    "mutation G($input: GrantTokensInput!) { grantTokens(input: $input) { success } }",
    { input: { userId, amount, reason: "setup" } },
    admin,
  );
  expect(result.data).toEqual({ grantTokens: { success: true } });
}

describe(`rate limits on ${driverName}`, () => {
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    const env = { RATE_LIMIT_SPEND_PER_MINUTE: "3", RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: "3" };
    a = await startTestApp(env, database);
    b = await startTestApp(env, database);
  });
  afterAll(async () => {
    await a.close();
    await b.close();
  });

  it("limits spends per user across instances, as data with the seconds to wait, writing nothing", async () => {
    const userId = newUserId();
    await grant(a, userId, 100);
    const token = await a.token(userId);
    const spend = (t: TestApp) =>
      t.gql<{ spendTokens: Record<string, unknown> }>(
        SPEND,
        { input: { amount: 1, description: "x" } },
        token,
      );
    const first = await spend(a);
    expect(first.errors).toBeUndefined();
    expect(first.data?.spendTokens).toMatchObject({ success: true });
    expect((await spend(b)).data?.spendTokens).toMatchObject({ success: true });
    expect((await spend(a)).data?.spendTokens).toMatchObject({ success: true, newBalance: 97 });
    const limited = (await spend(b)).data?.spendTokens;
    expect(limited).toMatchObject({ success: false, errorCode: "RATE_LIMITED", newBalance: 97 });
    expect(limited?.retryAfterSeconds).toBeGreaterThan(0);
    expect(limited?.retryAfterSeconds).toBeLessThanOrEqual(60);

    const rest = await fetch(`${a.url}/api/v1/tokens/spend`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ amount: 1, description: "x" }),
    });
    expect(rest.status).toBe(429);
    expect(Number(rest.headers.get("retry-after"))).toBeGreaterThan(0);
    const balance = await a.gql<{ balance: { balance: number } }>("{ balance { balance } }", {}, token);
    expect(balance.data?.balance.balance).toBe(97);

    // Another user is not limited by this one.
    const other = newUserId();
    await grant(a, other, 5);
    const otherSpend = await a.gql<{ spendTokens: Record<string, unknown> }>(
      SPEND,
      { input: { amount: 1, description: "x" } },
      await a.token(other),
    );
    expect(otherSpend.data?.spendTokens).toMatchObject({ success: true });
  });
});

describe.skipIf(!process.env.TEST_REDIS_URL)("rate limits in Redis", () => {
  it("shares spend counts between instances through Redis", async () => {
    const env = { RATE_LIMIT_SPEND_PER_MINUTE: "2", REDIS_URL: process.env.TEST_REDIS_URL as string };
    const a = await startTestApp(env, database);
    const b = await startTestApp(env, database);
    try {
      const userId = newUserId();
      await grant(a, userId, 10);
      const token = await a.token(userId);
      const codes = [];
      for (const t of [a, b, a]) {
        const result = await t.gql<{ spendTokens: { errorCode: string | null } }>(
          SPEND,
          { input: { amount: 1, description: "x" } },
          token,
        );
        codes.push(result.data?.spendTokens.errorCode ?? null);
      }
      expect(codes).toEqual([null, null, "RATE_LIMITED"]);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe(`GraphQL abuse limits on ${driverName}`, () => {
  let t: TestApp;
  let token: string;
  beforeAll(async () => {
    t = await startTestApp({}, database);
    token = await t.token(newUserId());
  });
  afterAll(() => t.close());

  const post = (body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${t.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}`, ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
  const firstError = async (query: string) =>
    ((await t.gql(query, {}, token)).errors?.[0]?.message ?? "") as string;

  it("refuses deep queries", async () => {
    const nest = (depth: number): string =>
      depth === 0 ? "id" : `... on TokenTransaction { ... on Node { ${nest(depth - 1)} } }`;
    const deep = `{ transactions { edges { node { ${nest(4)} } } } }`;
    expect(await firstError(deep)).toMatch(/depth/i);
    const honest = "{ transactions { edges { node { id amount } } pageInfo { hasNextPage } } }";
    expect(await firstError(honest)).toBe("");
  });

  it("refuses too many aliases, too many tokens and too costly queries", async () => {
    const aliases = `{ ${Array.from({ length: 11 }, (_, i) => `b${i}: balance { balance }`).join(" ")} }`;
    expect(await firstError(aliases)).toMatch(/alias/i);
    const tokens = `{ balance { ${Array.from({ length: 1100 }, () => "balance").join(" ")} } }`;
    expect(await firstError(tokens)).toMatch(/token/i);
    const costly =
      "{ transactions(first: 1000) { edges { cursor node { id amount balanceAfter kind description metadata createdAt } } } }";
    expect(await firstError(costly)).toMatch(/cost/i);
  });

  it("refuses batched requests", async () => {
    const response = await post([{ query: "{ balance { balance } }" }, { query: "{ balance { balance } }" }]);
    expect(response.status).toBeGreaterThanOrEqual(400);
  });

  it("refuses a request a browser could send cross-site without a preflight (CSRF)", async () => {
    const simple = await fetch(`${t.url}/graphql?query=${encodeURIComponent("{ balance { balance } }")}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(simple.status).toBe(403);
    const form = await post("query={balance{balance}}", {
      "content-type": "application/x-www-form-urlencoded",
    });
    expect(form.status).toBeGreaterThanOrEqual(400);
    const withHeader = await fetch(
      `${t.url}/graphql?query=${encodeURIComponent("{ balance { balance } }")}`,
      {
        headers: { authorization: `Bearer ${token}`, "x-graphql-csrf": "1" },
      },
    );
    expect(withHeader.status).toBe(200);
  });

  it("answers 413 to a body over 1 MB", async () => {
    const response = await post({
      query: "{ balance { balance } }",
      variables: { pad: "x".repeat(1_100_000) },
    });
    expect(response.status).toBe(413);
  });

  it("masks unexpected errors and keeps internals out of messages", async () => {
    const result = await t.gql('{ node(id: "VG9rZW5UcmFuc2FjdGlvbjphYmM") { id } }', {}, token);
    for (const error of result.errors ?? [])
      expect(JSON.stringify(error)).not.toMatch(/stack|select |postgres/i);
  });

  it("turns introspection off in production unless GRAPHQL_INTROSPECTION=true", async () => {
    const production = { NODE_ENV: "production" };
    const closed = await startTestApp(production, database);
    const open = await startTestApp({ ...production, GRAPHQL_INTROSPECTION: "true" }, database);
    try {
      const query = "{ __schema { queryType { name } } }";
      const user = await closed.token(newUserId());
      expect((await closed.gql(query, {}, user)).errors?.[0]?.message).toMatch(/introspection/i);
      expect((await open.gql(query, {}, user)).data).toEqual({ __schema: { queryType: { name: "Query" } } });
    } finally {
      await closed.close();
      await open.close();
    }
  });
});

describe(`metrics, logs and health on ${driverName}`, () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ METRICS_TOKEN: "metrics-token-for-tests" }, database);
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
    await database.handle.db.execute(sql.raw("ALTER TABLE token_balances RENAME TO token_balances_away"));
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
      await database.handle.db.execute(sql.raw("ALTER TABLE token_balances_away RENAME TO token_balances"));
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
