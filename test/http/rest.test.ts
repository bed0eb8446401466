import { describe, expect, it } from "vitest";
import { driverName } from "../helpers/database.js";
import { fundUser } from "../helpers/ledger.js";
import { useTestServer } from "../helpers/test-server.js";

const t = useTestServer();

const fundedUser = async (amount: number) => (await fundUser(t, amount)).token;

function call(path: string, token: string | undefined, init: RequestInit = {}) {
  return fetch(`${t.url}/api/v1/tokens${path}`, {
    ...init,
    headers: {
      "content-type": "application/json",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(init.headers as Record<string, string>),
    },
  });
}

describe(`REST routes on ${driverName}`, () => {
  it("GET /balance answers { balance, held, available, next_expiry, expiring, last_updated }", async () => {
    const token = await fundedUser(500);
    const response = await call("/balance", token);
    expect(response.status).toBe(200);
    const body = (await response.json()) as Record<string, unknown>;
    // A grant never expires: nothing is listed (test/live/expiring.test.ts lists what does).
    expect(body).toEqual({
      balance: 500,
      held: 0,
      available: 500,
      next_expiry: null,
      expiring: [],
      last_updated: expect.any(String),
    });
    expect(new Date(body.last_updated as string).getTime()).toBeGreaterThan(0);
  });

  it("POST /spend spends and answers { success, new_balance, message }", async () => {
    const token = await fundedUser(500);
    const response = await call("/spend", token, {
      method: "POST",
      body: JSON.stringify({ amount: 10, description: "Premium feature", metadata: { feature: "boost" } }),
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      success: true,
      new_balance: 490,
      message: "Spent 10 tokens. New balance: 490",
    });
  });

  it("POST /spend with an Idempotency-Key replays instead of spending twice", async () => {
    const token = await fundedUser(100);
    const init = {
      method: "POST",
      headers: { "idempotency-key": "checkout-1" },
      body: JSON.stringify({ amount: 30, description: "bundle" }),
    };
    const first = await (await call("/spend", token, init)).json();
    const second = await (await call("/spend", token, init)).json();
    expect(second).toEqual(first);
    expect(await (await call("/balance", token)).json()).toMatchObject({ balance: 70 });
  });

  it("POST /spend refuses overdrafts with 409 and the balance unchanged", async () => {
    const token = await fundedUser(5);
    const response = await call("/spend", token, {
      method: "POST",
      body: JSON.stringify({ amount: 6, description: "x" }),
    });
    expect(response.status).toBe(409);
    expect(await response.json()).toMatchObject({
      success: false,
      new_balance: 5,
      error_code: "INSUFFICIENT_TOKENS",
    });
  });

  it.each([
    ["malformed JSON", "{amount: 1"],
    ["a string amount", JSON.stringify({ amount: "10", description: "x" })],
    ["a fractional amount", JSON.stringify({ amount: 1.5, description: "x" })],
    ["no description", JSON.stringify({ amount: 1 })],
    ["metadata that is a list", JSON.stringify({ amount: 1, description: "x", metadata: [1] })],
  ])("POST /spend with %s is 400 and changes nothing", async (_name, body) => {
    const token = await fundedUser(10);
    const response = await call("/spend", token, { method: "POST", body });
    expect(response.status).toBe(400);
    const error = (await response.json()) as { error: { message: string } };
    expect(error.error.message.length).toBeGreaterThan(0);
    expect(await (await call("/balance", token)).json()).toMatchObject({ balance: 10 });
  });

  it("GET /history lists entries newest first and validates limit", async () => {
    const token = await fundedUser(100);
    for (const amount of [1, 2, 3]) {
      await call("/spend", token, {
        method: "POST",
        body: JSON.stringify({ amount, description: `s${amount}` }),
      });
    }
    const history = (await (await call("/history?limit=3", token)).json()) as { amount: number }[];
    expect(history.map((entry) => entry.amount)).toEqual([-3, -2, -1]);
    const all = (await (await call("/history", token)).json()) as { amount: number; balance_after: number }[];
    expect(all).toHaveLength(4);
    expect(all[0]?.balance_after).toBe(94);
    for (const limit of ["0", "201", "abc", "1.5"]) {
      expect((await call(`/history?limit=${limit}`, token)).status).toBe(400);
    }
  });

  it("every route answers 401 without a token", async () => {
    for (const [path, method] of [
      ["/balance", "GET"],
      ["/spend", "POST"],
      ["/history", "GET"],
    ] as const) {
      const response = await call(path, undefined, { method, ...(method === "POST" ? { body: "{}" } : {}) });
      expect(response.status).toBe(401);
      expect(response.headers.get("www-authenticate")).toMatch(/Bearer/);
    }
  });

  it("unknown routes are 404 and bodies over 1 MB are 413", async () => {
    const token = await fundedUser(10);
    expect((await call("/nope", token)).status).toBe(404);
    const big = JSON.stringify({ amount: 1, description: "x", metadata: { blob: "x".repeat(1_100_000) } });
    expect((await call("/spend", token, { method: "POST", body: big })).status).toBe(413);
    expect(await (await call("/balance", token)).json()).toMatchObject({ balance: 10 });
  });

  it("/health and /ready answer", async () => {
    expect((await fetch(`${t.url}/health`)).status).toBe(200);
    expect(await (await fetch(`${t.url}/ready`)).json()).toEqual({ status: "ready" });
  });
});
