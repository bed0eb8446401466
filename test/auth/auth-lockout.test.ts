import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";
import { newUserId, startTestApp, type TestApp } from "../helpers/app.js";
import { driverName, openTestDatabase, type TestDatabase } from "../helpers/database.js";
import { BALANCE_CHANGED, wsClient } from "../helpers/live.js";
import { deliver, fixture } from "../helpers/revenuecat.js";

/**
 * The failed-authentication limit slows down someone guessing credentials from one address. It must
 * never refuse a valid credential: mobile users share carrier-grade NAT addresses by the thousand,
 * and RevenueCat's deliveries come from a few addresses that an attacker could otherwise block.
 */

let database: TestDatabase;
let t: TestApp;
const LIMIT = 3;

beforeAll(async () => {
  database = await openTestDatabase();
  t = await startTestApp({ RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: String(LIMIT), TRUST_PROXY: "1" }, database);
});
afterAll(async () => {
  await t.close();
  await database.close();
});

let nextAddress = 1;
/** A fresh client address, as our one trusted proxy would report it. */
function address(): Record<string, string> {
  nextAddress += 1;
  return { "x-forwarded-for": `198.51.100.${nextAddress}` };
}

const balance = (headers: Record<string, string>, authorization: string) =>
  fetch(`${t.url}/api/v1/tokens/balance`, { headers: { authorization, ...headers } });

async function failTimes(headers: Record<string, string>, times: number): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < times; i += 1)
    statuses.push((await balance(headers, `Bearer forged.token.${i}`)).status);
  return statuses;
}

describe(`failed-authentication limit on ${driverName}`, () => {
  it("blocks further bad tokens from an address, but never a valid token from it", async () => {
    const from = address();
    expect(await failTimes(from, LIMIT + 2)).toEqual([401, 401, 401, 429, 429]);
    const blocked = await balance(from, "Bearer forged.token.again");
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get("retry-after"))).toBeGreaterThan(0);

    const valid = await t.token(newUserId());
    expect((await balance(from, `Bearer ${valid}`)).status).toBe(200);
    const gql = await fetch(`${t.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${valid}`, ...from },
      body: JSON.stringify({ query: "{ balance { balance } }" }),
    });
    expect(await gql.json()).toEqual({ data: { balance: { balance: 0 } } });
  });

  it("a blocked bad token on /graphql gets 429 in GraphQL's error shape with extensions.code RATE_LIMITED", async () => {
    const from = address();
    await failTimes(from, LIMIT + 1);
    const response = await fetch(`${t.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer forged.token", ...from },
      body: JSON.stringify({ query: "{ balance { balance } }" }),
    });
    expect(response.status).toBe(429);
    const body = (await response.json()) as { errors: { message: string; extensions: { code: string } }[] };
    expect(body.errors[0]?.extensions.code).toBe("RATE_LIMITED");
    expect(body.errors[0]?.message).toMatch(/too many failed authentications/i);
  });

  it("an expired token is not an attack: it is never counted", async () => {
    const from = address();
    const expired = await t.token(newUserId(), { expiresIn: Math.floor(Date.now() / 1000) - 3600 });
    for (let i = 0; i < LIMIT + 3; i += 1) {
      const response = await balance(from, `Bearer ${expired}`);
      expect(response.status).toBe(401);
      expect(await response.json()).toMatchObject({ error: { message: "Token has expired" } });
    }
    expect((await balance(from, "Bearer forged.token")).status).toBe(401);
  });

  it("bad API tokens never block RevenueCat's deliveries from the same address, and the webhook counts its own", async () => {
    const from = address();
    await failTimes(from, LIMIT + 5);
    const genuine = fixture("TEST__rudderstack-transformer");
    expect((await deliver(t.url, genuine, { headers: from })).status).toBe(200);

    const other = address();
    const wrong = (i: number) =>
      deliver(t.url, fixture("TEST__rudderstack-transformer"), {
        authorization: `Bearer wrong-${i}`,
        headers: other,
      });
    const statuses = [];
    for (let i = 0; i < LIMIT + 1; i += 1) statuses.push((await wrong(i)).status);
    expect(statuses).toEqual([401, 401, 401, 429]);
    // The right secret from that address is still accepted, and its API users are unaffected.
    expect((await deliver(t.url, fixture("TEST__rudderstack-transformer"), { headers: other })).status).toBe(
      200,
    );
    expect((await balance(other, "Bearer forged.token")).status).toBe(401);
  });

  it("a WebSocket with a valid token connects from a blocked address", async () => {
    const from = address();
    await failTimes(from, LIMIT + 1);
    const userToken = await t.token(newUserId());
    const client = wsClient(t.url, `Bearer ${userToken}`, undefined, from);
    try {
      const first = await new Promise<unknown>((resolve, reject) => {
        const stop = client.subscribe(
          { query: BALANCE_CHANGED },
          {
            next: (value) => {
              stop();
              resolve(value);
            },
            error: reject,
            complete: () => undefined,
          },
        );
      });
      expect(first).toMatchObject({ data: { balanceChanged: { balance: 0 } } });
    } finally {
      await client.dispose();
    }
  });
});

describe("client address behind proxies (TRUST_PROXY=<number of proxies>)", () => {
  it("takes the right-most address not written by a trusted proxy, so a client cannot choose its own", async () => {
    // One proxy: it appends the address it saw, so the last X-Forwarded-For entry is the client's.
    const from = address()["x-forwarded-for"] as string;
    const spoofed = (i: number) => ({ "x-forwarded-for": `10.0.0.${i}, ${from}` });
    const statuses: number[] = [];
    for (let i = 0; i < LIMIT + 1; i += 1) {
      statuses.push((await balance(spoofed(i), `Bearer forged.${i}`)).status);
    }
    // Rotating the left-most (client-written) entry does not escape the limit.
    expect(statuses).toEqual([401, 401, 401, 429]);
    // Writing someone else's address on the left does not block them.
    expect((await balance({ "x-forwarded-for": "203.0.113.77" }, "Bearer forged.x")).status).toBe(401);
  });

  it("TRUST_PROXY accepts a number of hops; 'true' is refused with a reason", () => {
    expect(loadConfig({ TRUST_PROXY: "2" }).trustedProxies).toBe(2);
    expect(loadConfig({ TRUST_PROXY: "false" }).trustedProxies).toBe(0);
    expect(loadConfig({}).trustedProxies).toBe(0);
    expect(() => loadConfig({ TRUST_PROXY: "true" })).toThrow(ConfigError);
    expect(() => loadConfig({ TRUST_PROXY: "true" })).toThrow(/number of proxies/);
  });
});
