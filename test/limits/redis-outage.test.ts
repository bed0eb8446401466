import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";
import { newUserId, startTestApp, type TestApp } from "../helpers/app.js";
import { driverName, useTestDatabase } from "../helpers/database.js";
import { fundUser, SPEND } from "../helpers/ledger.js";
import { type RedisServer, redisServerPath, startRedisServer } from "../helpers/redis.js";
import { skipUnlessTool } from "../helpers/tools.js";

/**
 * REDIS_URL set and Redis stopped mid-test (a real redis-server of the test's own, killed): the
 * limits fall back to the database store, so spends and authentication keep working and keep being
 * limited; /ready says it is degraded without leaving the load balancer; it recovers when Redis does.
 */

const db = useTestDatabase();
const skip = skipUnlessTool("redis-server", redisServerPath);
const LIMIT = 3;
const PREFIX = "tl-test:";

describe("REDIS_KEY_PREFIX", () => {
  it("defaults to token-ledger: and refuses characters that do not belong in a key prefix", () => {
    expect(loadConfig({}).rateLimits.redisKeyPrefix).toBe("token-ledger:");
    expect(loadConfig({ REDIS_KEY_PREFIX: "shop:" }).rateLimits.redisKeyPrefix).toBe("shop:");
    expect(() => loadConfig({ REDIS_KEY_PREFIX: "a b*" })).toThrow(ConfigError);
  });
});

describe.skipIf(skip)(`rate limits with Redis stopped, on ${driverName}`, () => {
  let redis: RedisServer;
  let t: TestApp;

  beforeAll(async () => {
    redis = await startRedisServer();
    t = await startTestApp(
      {
        REDIS_URL: redis.url,
        REDIS_KEY_PREFIX: PREFIX,
        RATE_LIMIT_SPEND_PER_MINUTE: String(LIMIT),
        RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: String(LIMIT),
        TRUST_PROXY: "1",
      },
      db.current(),
    );
  });
  afterAll(async () => {
    await t?.close();
    await redis?.close();
  });

  const restSpend = (token: string) =>
    fetch(`${t.url}/api/v1/tokens/spend`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ amount: 1, description: "x" }),
    });
  const badToken = (from: Record<string, string>) =>
    fetch(`${t.url}/api/v1/tokens/balance`, { headers: { authorization: "Bearer forged.token.x", ...from } });
  const metric = async (name: string) => {
    const text = await (await fetch(`${t.url}/metrics`)).text();
    return Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1]);
  };

  it("counts in Redis under the configured key prefix while Redis is up", async () => {
    const { userId, token } = await fundUser(t, 10);
    expect((await restSpend(token)).status).toBe(200);
    expect(await redis.client.keys("*")).toContain(`${PREFIX}spend:${userId}`);
    expect((await redis.client.keys("*")).filter((key) => !key.startsWith(PREFIX))).toEqual([]);
    expect(await (await fetch(`${t.url}/ready`)).json()).toEqual({ status: "ready" });
    expect(await metric("token_rate_limit_degraded")).toBe(0);
  });

  it("with Redis killed: spends succeed and stay limited, bad tokens get 401 then 429, /ready is degraded", async () => {
    await redis.kill();
    const { token } = await fundUser(t, 10);
    const statuses = [];
    for (let i = 0; i < LIMIT + 1; i += 1) statuses.push((await restSpend(token)).status);
    expect(statuses).toEqual([200, 200, 200, 429]);

    const other = await fundUser(t, 10);
    const gql = await t.gql<{ spendTokens: { success: boolean } }>(
      SPEND,
      { input: { amount: 1, description: "graphql" } },
      other.token,
    );
    expect(gql.errors).toBeUndefined();
    expect(gql.data?.spendTokens.success).toBe(true);

    const from = { "x-forwarded-for": "203.0.113.7" };
    const failures = [];
    for (let i = 0; i < LIMIT + 1; i += 1) failures.push((await badToken(from)).status);
    expect(failures).toEqual([401, 401, 401, 429]);
    const valid = await t.token(newUserId());
    const fine = await fetch(`${t.url}/api/v1/tokens/balance`, {
      headers: { authorization: `Bearer ${valid}`, ...from },
    });
    expect(fine.status).toBe(200);

    const ready = await fetch(`${t.url}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({
      status: "degraded",
      degraded: { rateLimits: "redis unreachable: rate limits are counted in the database" },
    });
    expect(await metric("token_rate_limit_degraded")).toBe(1);
    expect(await metric('token_rate_limit_fallbacks_total\\{limit="spend"\\}')).toBeGreaterThanOrEqual(
      LIMIT + 2,
    );
    expect(await metric('token_rate_limit_fallbacks_total\\{limit="auth"\\}')).toBeGreaterThanOrEqual(LIMIT);
    const warnings = t.logs.lines.filter((line) => String(line.msg).startsWith("redis unavailable"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.level).toBe(40);
    expect(t.logs.lines.filter((line) => line.level === 50)).toEqual([]);
  });

  it("goes back to Redis once it answers again", async () => {
    await redis.restart();
    const deadline = Date.now() + 15_000;
    let body: unknown;
    while (Date.now() < deadline) {
      body = await (await fetch(`${t.url}/ready`)).json();
      if ((body as { status: string }).status === "ready") break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(body).toEqual({ status: "ready" });
    const { userId, token } = await fundUser(t, 10);
    expect((await restSpend(token)).status).toBe(200);
    expect(await redis.client.keys("*")).toContain(`${PREFIX}spend:${userId}`);
    expect(await metric("token_rate_limit_degraded")).toBe(0);
    expect(t.logs.messages()).toContain("redis available again: rate limits are counted in redis");
  });
});
