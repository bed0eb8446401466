import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newUserId, startTestApp, type TestApp } from "../helpers/app.js";
import { driverName, useTestDatabase } from "../helpers/database.js";
import { fundUser, SPEND } from "../helpers/ledger.js";

const db = useTestDatabase();
const grant = (t: TestApp, userId: string, amount: number) => fundUser(t, amount, userId);

describe(`rate limits on ${driverName}`, () => {
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    const env = { RATE_LIMIT_SPEND_PER_MINUTE: "3", RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: "3" };
    a = await startTestApp(env, db.current());
    b = await startTestApp(env, db.current());
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
    const a = await startTestApp(env, db.current());
    const b = await startTestApp(env, db.current());
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
