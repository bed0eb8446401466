import { describe, expect, it } from "vitest";
import { newUserId, type TestApp, useTestApp } from "../helpers/app.js";
import { driverName, useTestDatabase } from "../helpers/database.js";
import { fundUser, SPEND } from "../helpers/ledger.js";
import { BALANCE_CHANGED, wsClient } from "../helpers/live.js";
import { deliver, fixture } from "../helpers/revenuecat.js";

/**
 * One access line per request (never a credential or a body), warnings for what an operator must
 * see (refused credentials, lockouts, refused webhooks, purchases credited nothing), and the metrics
 * and labels the alerts in deploy/prometheus/alerts.yml rely on.
 */

const db = useTestDatabase();
const LIMIT = 3;
const t = useTestApp(
  { RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: String(LIMIT), TRUST_PROXY: "1", LOG_LEVEL: "debug" },
  db.current,
);

let nextRequest = 0;
/** Headers with a fresh request id (and client address), to find the request's lines afterwards. */
function tagged(extra: Record<string, string> = {}): { id: string; headers: Record<string, string> } {
  nextRequest += 1;
  const id = `req-log-${nextRequest}-${Date.now()}`;
  return { id, headers: { "x-request-id": id, "x-forwarded-for": `192.0.2.${nextRequest}`, ...extra } };
}

/** The lines a request wrote, once its access line is there (it is written when the response closes). */
async function linesOf(app: TestApp, requestId: string): Promise<Record<string, unknown>[]> {
  const deadline = Date.now() + 2_000;
  for (;;) {
    const lines = app.logs.lines.filter((line) => line.requestId === requestId);
    if (lines.some((line) => "durationMs" in line) || Date.now() > deadline) return lines;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
const accessLine = async (app: TestApp, requestId: string) =>
  (await linesOf(app, requestId)).filter((line) => "durationMs" in line);

const WARN = 40;
const INFO = 30;
const DEBUG = 20;

async function scrape(app: TestApp): Promise<string> {
  return (await fetch(`${app.url}/metrics`)).text();
}
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((entry) => entry.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.split(" ")[1]);
}

describe(`access log on ${driverName}`, () => {
  it("writes one line per REST request with method, path, status, duration, request id and user", async () => {
    const { userId, token } = await fundUser(t, 5);
    const { id, headers } = tagged({ authorization: `Bearer ${token}`, "content-type": "application/json" });
    const response = await fetch(`${t.url}/api/v1/tokens/spend?note=x`, {
      method: "POST",
      headers,
      body: JSON.stringify({ amount: 1, description: "access log" }),
    });
    expect(response.status).toBe(200);
    const lines = await accessLine(t, id);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: INFO,
      msg: "request completed",
      method: "POST",
      path: "/api/v1/tokens/spend",
      status: 200,
      requestId: id,
      userId,
    });
    expect(lines[0]?.durationMs).toBeGreaterThanOrEqual(0);
    const raw = t.logs.raw.filter((line) => line.includes(id)).join("\n");
    expect(raw).not.toContain(token);
    expect(raw).not.toContain("access log");
  });

  it("names the GraphQL operation and the user, and never the variables", async () => {
    const { userId, token } = await fundUser(t, 5);
    const { id, headers } = tagged({ authorization: `Bearer ${token}`, "content-type": "application/json" });
    await fetch(`${t.url}/graphql`, {
      method: "POST",
      headers,
      body: JSON.stringify({ query: SPEND, variables: { input: { amount: 1, description: "secret-ish" } } }),
    });
    const [line] = await accessLine(t, id);
    expect(line).toMatchObject({ path: "/graphql", status: 200, operation: "S", userId, level: INFO });
    expect(JSON.stringify(t.logs.lines.filter((entry) => entry.requestId === id))).not.toContain(
      "secret-ish",
    );
  });

  it("logs probes at debug while they succeed", async () => {
    for (const path of ["/health", "/ready", "/metrics"]) {
      const { id, headers } = tagged();
      expect((await fetch(`${t.url}${path}`, { headers })).status).toBe(200);
      expect(await accessLine(t, id)).toMatchObject([{ level: DEBUG, path, status: 200 }]);
    }
  });

  it("warns on a refused token (REST 401 and GraphQL UNAUTHENTICATED) with the reason, never the token", async () => {
    const forged = "forged.token.value";
    const rest = tagged({ authorization: `Bearer ${forged}` });
    expect((await fetch(`${t.url}/api/v1/tokens/balance`, { headers: rest.headers })).status).toBe(401);
    expect(await accessLine(t, rest.id)).toMatchObject([
      {
        level: WARN,
        msg: "authentication failed",
        status: 401,
        authFailure: "Token is not valid",
        clientAddress: rest.headers["x-forwarded-for"],
      },
    ]);

    const gql = tagged({ authorization: `Bearer ${forged}`, "content-type": "application/json" });
    await fetch(`${t.url}/graphql`, {
      method: "POST",
      headers: gql.headers,
      body: JSON.stringify({ query: "query B { balance { balance } }" }),
    });
    expect(await accessLine(t, gql.id)).toMatchObject([
      {
        level: WARN,
        msg: "authentication failed",
        operation: "B",
        authFailure: "Token is not valid",
        errorCodes: ["UNAUTHENTICATED"],
      },
    ]);
    expect(t.logs.raw.join("\n")).not.toContain(forged);
  });

  it("warns on a lockout (429 after too many failures) on REST and GraphQL", async () => {
    const address = { "x-forwarded-for": "198.51.100.200" };
    for (let i = 0; i < LIMIT; i += 1)
      await fetch(`${t.url}/api/v1/tokens/balance`, { headers: { authorization: "Bearer bad", ...address } });
    const rest = tagged({ authorization: "Bearer bad", ...address });
    expect((await fetch(`${t.url}/api/v1/tokens/balance`, { headers: rest.headers })).status).toBe(429);
    expect(await accessLine(t, rest.id)).toMatchObject([
      { level: WARN, msg: "authentication locked out", status: 429, lockedOut: true },
    ]);
    const gql = tagged({ authorization: "Bearer bad", "content-type": "application/json", ...address });
    const response = await fetch(`${t.url}/graphql`, {
      method: "POST",
      headers: gql.headers,
      body: JSON.stringify({ query: "{ balance { balance } }" }),
    });
    expect(response.status).toBe(429);
    expect(await accessLine(t, gql.id)).toMatchObject([{ level: WARN, msg: "authentication locked out" }]);
  });
});

describe(`WebSocket refusals on ${driverName}`, () => {
  it("warns when connection_init is refused (4401), with the reason and address, never the token", async () => {
    const forged = "forged.ws.token";
    const closed = new Promise<number>((resolve) => {
      const client = wsClient(t.url, `Bearer ${forged}`, (code) => resolve(code), {
        "x-forwarded-for": "198.51.100.77",
      });
      client.subscribe({ query: BALANCE_CHANGED }, { next: () => {}, error: () => {}, complete: () => {} });
    });
    expect(await closed).toBe(4401);
    const deadline = Date.now() + 2_000;
    const find = () =>
      t.logs.lines.find((line) => line.transport === "websocket" && line.clientAddress === "198.51.100.77");
    while (!find() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(find()).toMatchObject({
      level: WARN,
      msg: "authentication failed",
      closeCode: 4401,
      authFailure: "Unauthorized: Token is not valid",
    });
    expect(t.logs.raw.join("\n")).not.toContain(forged);
  });
});

describe(`webhook logs and metrics on ${driverName}`, () => {
  it("warns on a webhook with the wrong secret and counts it in token_webhook_rejected_total", async () => {
    const before = sample(await scrape(t), 'token_webhook_rejected_total{reason="unauthorized"}');
    expect(before).toBe(0);
    const { id, headers } = tagged();
    const body = fixture("NON_RENEWING_PURCHASE__rc-docs", { app_user_id: newUserId() });
    const answer = await deliver(t.url, body, { authorization: "Bearer wrong-secret-0123456789", headers });
    expect(answer.status).toBe(401);
    expect(await accessLine(t, id)).toMatchObject([
      {
        level: WARN,
        msg: "webhook refused: authorization does not match",
        status: 401,
        webhookRejected: "unauthorized",
      },
    ]);
    expect(t.logs.raw.join("\n")).not.toContain("wrong-secret-0123456789");

    const bad = tagged();
    expect((await deliver(t.url, "{not json", { headers: bad.headers })).status).toBe(400);
    const text = await scrape(t);
    expect(sample(text, 'token_webhook_rejected_total{reason="unauthorized"}')).toBe(1);
    expect(sample(text, 'token_webhook_rejected_total{reason="bad_body"}')).toBe(1);
    expect(await accessLine(t, bad.id)).toMatchObject([
      { level: INFO, status: 400, webhookRejected: "bad_body" },
    ]);
  });

  it("warns on an unmapped purchase (a customer paid and got nothing) and counts the outcome", async () => {
    const { id, headers } = tagged();
    const body = fixture("NON_RENEWING_PURCHASE__rc-docs", {
      app_user_id: newUserId(),
      product_id: "not_in_the_map",
    });
    expect((await deliver(t.url, body, { headers })).body.outcome).toBe("unmapped");
    const lines = await linesOf(t, id);
    expect(lines.find((line) => line.outcome === "unmapped")).toMatchObject({
      level: WARN,
      msg: "purchase not credited: product not in PRODUCT_TOKEN_MAP (map it, then reprocess)",
      eventId: body.event.id,
    });
    expect(sample(await scrape(t), 'token_webhook_outcomes_total{outcome="unmapped"}')).toBe(1);
  });

  it("logs who called reprocessWebhooks, with the request id", async () => {
    const adminId = newUserId("admin");
    const admin = await t.token(adminId, { admin: true });
    const { id, headers } = tagged({ authorization: `Bearer ${admin}`, "content-type": "application/json" });
    const response = await fetch(`${t.url}/graphql`, {
      method: "POST",
      headers,
      body: JSON.stringify({ query: "mutation R { reprocessWebhooks { reprocessed } }" }),
    });
    expect(((await response.json()) as { errors?: unknown }).errors).toBeUndefined();
    const lines = await linesOf(t, id);
    expect(lines.find((line) => line.msg === "reprocessWebhooks requested")).toMatchObject({
      callerId: adminId,
      requestId: id,
    });
    expect(lines.find((line) => line.msg === "reprocessWebhooks done")).toMatchObject({ callerId: adminId });
    expect(lines.find((line) => line.outcome === "unmapped")).toMatchObject({
      level: WARN,
      callerId: adminId,
    });
  });

  it("gives each WebSocket operation a request id of its own: the upgrade's X-Request-Id and the operation's id", async () => {
    const { userId, token } = await fundUser(t, 5);
    const { id } = tagged();
    const client = wsClient(t.url, `Bearer ${token}`, undefined, { "x-request-id": id });
    try {
      const spend = (description: string) =>
        new Promise<unknown>((resolve, reject) => {
          const variables = { input: { amount: 1, description } };
          client.subscribe({ query: SPEND, variables }, { next: resolve, error: reject, complete: () => {} });
        });
      await spend("ws one");
      await spend("ws two");
    } finally {
      await client.dispose();
    }
    const spent = t.logs.lines.filter(
      (line) => line.userId === userId && /spent 1 tokens/.test(String(line.msg)),
    );
    const ids = spent.map((line) => String(line.requestId));
    expect(ids).toHaveLength(2);
    expect(new Set(ids).size).toBe(2);
    for (const requestId of ids) expect(requestId.startsWith(`${id}:`)).toBe(true);
  });
});

describe(`counters start at 0 on ${driverName}`, () => {
  it("exposes every known label value at 0 before the first event, so increase() sees the first one", async () => {
    const fresh = db.current();
    const { startTestApp } = await import("../helpers/app.js");
    const app = await startTestApp({}, fresh);
    try {
      const text = await scrape(app);
      for (const outcome of [
        "credited",
        "duplicate",
        "failed",
        "unmapped",
        "unmatched",
        "refunded",
        "ignored",
      ])
        expect(sample(text, `token_webhook_outcomes_total{outcome="${outcome}"}`)).toBe(0);
      for (const reason of ["unauthorized", "bad_signature", "locked_out", "bad_body", "too_large", "error"])
        expect(sample(text, `token_webhook_rejected_total{reason="${reason}"}`)).toBe(0);
      for (const outcome of ["success", "insufficient", "rate_limited", "replay", "invalid"])
        expect(sample(text, `token_spend_total{outcome="${outcome}"}`)).toBe(0);
      expect(sample(text, 'token_rate_limit_fallbacks_total{limit="spend"}')).toBe(0);
      expect(sample(text, "token_rate_limit_degraded")).toBe(0);
    } finally {
      await app.close();
    }
  });
});
