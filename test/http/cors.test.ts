import { describe, expect, it } from "vitest";
import { startTestApp, useTestApp } from "../helpers/app.js";
import { driverName } from "../helpers/database.js";

const t = useTestApp();

const preflight = (url: string, path: string, origin: string) =>
  fetch(`${url}${path}`, {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization, content-type, idempotency-key",
    },
  });

describe(`CORS on ${driverName}`, () => {
  it("by default a browser app on any origin may call /graphql and the REST routes, without credentials", async () => {
    for (const path of ["/graphql", "/api/v1/tokens/spend", "/api/v1/tokens/balance"]) {
      const answer = await preflight(t.url, path, "https://app.example.com");
      expect(answer.status, path).toBe(204);
      expect(answer.headers.get("access-control-allow-origin")).toBe("*");
      expect(answer.headers.get("access-control-allow-headers")).toContain("idempotency-key");
      expect(answer.headers.get("access-control-allow-credentials")).toBeNull();
    }
    const token = await t.token("cors-user");
    const headers = { origin: "https://app.example.com", authorization: `Bearer ${token}` };
    const rest = await fetch(`${t.url}/api/v1/tokens/balance`, { headers });
    const graphql = await fetch(`${t.url}/graphql?query=${encodeURIComponent("{ balance { balance } }")}`, {
      headers,
    });
    for (const answer of [rest, graphql]) {
      expect(answer.status).toBe(200);
      expect(answer.headers.get("access-control-allow-origin")).toBe("*");
      expect(answer.headers.get("access-control-expose-headers")).toContain("retry-after");
    }
  });

  it("the webhook, the probes and /metrics grant no browser anything", async () => {
    for (const path of ["/api/v1/tokens/webhook/revenuecat", "/health", "/metrics"]) {
      const answer = await preflight(t.url, path, "https://app.example.com");
      expect(answer.headers.get("access-control-allow-origin"), path).toBeNull();
    }
  });

  it("CORS_ORIGINS narrows it to a list: listed origins are echoed, others refused", async () => {
    const app = await startTestApp({ CORS_ORIGINS: "https://app.example.com, http://localhost:5173" }, t.db);
    try {
      const listed = await preflight(app.url, "/graphql", "http://localhost:5173");
      expect(listed.status).toBe(204);
      expect(listed.headers.get("access-control-allow-origin")).toBe("http://localhost:5173");
      expect(listed.headers.get("vary")).toContain("Origin");
      const other = await preflight(app.url, "/api/v1/tokens/spend", "https://evil.example");
      expect(other.status).toBe(403);
      expect(other.headers.get("access-control-allow-origin")).toBeNull();
      const simple = await fetch(`${app.url}/api/v1/tokens/balance`, {
        headers: { origin: "https://evil.example" },
      });
      expect(simple.headers.get("access-control-allow-origin")).toBeNull();
    } finally {
      await app.close();
    }
  });
});
