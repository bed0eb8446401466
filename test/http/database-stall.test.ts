import { and, eq, isNotNull } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DatabaseHandle, openDatabase } from "../../src/db/client.js";
import { ledgerEntriesTable } from "../../src/db/schema.js";
import { getBalance } from "../../src/modules/ledger/ledger.queries.js";
import { WEBHOOK_SECRET } from "../helpers/app.js";
import { openTestDatabase, serverUrl, type TestDatabase } from "../helpers/database.js";
import { fundUser } from "../helpers/ledger.js";
import { fixture } from "../helpers/revenuecat.js";
import { measureStall } from "../helpers/stall.js";
import { OutageProxy } from "../helpers/tcp-proxy.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

const DEADLINE_MS = 4_000;

/**
 * A database that stops answering without closing anything (SIGSTOP, a stuck disk, a partition that
 * drops nothing): a proxy between the server and PostgreSQL stops passing bytes. Every request is
 * answered within the deadline (503 DATABASE_UNAVAILABLE, Retry-After), /ready says 503 within 2 s,
 * /health stays instant, nothing acknowledged is lost, and service resumes within 1 s of the thaw.
 */
describe.skipIf(!serverUrl)("a database that stops answering (real PostgreSQL behind a frozen proxy)", () => {
  let database: TestDatabase;
  let proxy: OutageProxy;
  let handle: DatabaseHandle;
  let server: TestServer;
  beforeAll(async () => {
    database = await openTestDatabase();
    const target = new URL(database.url as string);
    proxy = new OutageProxy({ host: target.hostname, port: Number(target.port || 5432) });
    await proxy.open();
    const url = proxy.urlFor(database.url as string);
    handle = await openDatabase({ url, poolSize: 10 });
    server = await startTestServer(
      { DATABASE_POOL_SIZE: "10", DATABASE_DEADLINE_MS: String(DEADLINE_MS) },
      { handle, url, close: async () => {} },
    );
  });
  afterAll(async () => {
    await server?.close();
    await proxy?.cut();
    await handle?.close();
    await database?.close();
  });

  it("answers REST, GraphQL and the webhook with 503 DATABASE_UNAVAILABLE in their own shapes within the deadline", async () => {
    const { userId, token } = await fundUser(server, 100);
    proxy.freeze();
    try {
      const started = Date.now();
      const [rest, graphql, webhook] = await Promise.all([
        fetch(`${server.url}/api/v1/tokens/spend`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${token}`,
            "content-type": "application/json",
            "idempotency-key": "k1",
          },
          body: JSON.stringify({ amount: 1, description: "stalled" }),
        }),
        fetch(`${server.url}/graphql`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${token}`,
            "content-type": "application/json",
            accept: "application/graphql-response+json",
          },
          body: JSON.stringify({ query: "{ balance { balance } }" }),
        }),
        fetch(`${server.url}/api/v1/tokens/webhook/revenuecat`, {
          method: "POST",
          headers: { authorization: `Bearer ${WEBHOOK_SECRET}`, "content-type": "application/json" },
          body: JSON.stringify(fixture("NON_RENEWING_PURCHASE__rc-docs", { app_user_id: userId })),
        }),
      ]);
      expect(Date.now() - started).toBeLessThan(DEADLINE_MS + 1_000);
      for (const response of [rest, graphql, webhook]) {
        expect(response.status).toBe(503);
        expect(Number(response.headers.get("retry-after"))).toBeGreaterThan(0);
      }
      expect(await rest.json()).toMatchObject({
        error: { code: "DATABASE_UNAVAILABLE", outcome: "unknown" },
      });
      expect(await webhook.json()).toMatchObject({ error: { code: "DATABASE_UNAVAILABLE" } });
      const body = (await graphql.json()) as {
        errors: { message: string; extensions: Record<string, unknown> }[];
      };
      expect(body.errors[0]?.extensions).toMatchObject({ code: "DATABASE_UNAVAILABLE", outcome: "unknown" });
      expect(body.errors[0]?.message).toMatch(/same idempotency key/);
    } finally {
      proxy.thaw();
    }
  });

  it("under 16 retrying clients: none hangs, /ready 503 within 2 s, /health at once, nothing acknowledged lost, back within 1 s", async () => {
    const { userId } = await fundUser(server, 100_000);
    const figures = await measureStall({ url: server.url, proxy, userId, deadlineMs: DEADLINE_MS });
    const { attempts, acknowledged, ...summary } = figures;
    console.log(`stall figures (${server.entry}):`, JSON.stringify(summary));

    expect(figures.startedDuringPause).toBeGreaterThan(0);
    expect(figures.hung).toBe(0);
    expect(figures.answeredWithinDeadline).toBe(figures.startedDuringPause);
    for (const attempt of attempts.filter((a) => a.status !== 200)) {
      expect(attempt.status).toBe(503);
      expect(JSON.parse(attempt.body)).toMatchObject({ error: { code: "DATABASE_UNAVAILABLE" } });
    }
    expect(figures.ready.length).toBeGreaterThan(0);
    for (const probe of figures.ready) expect(probe).toMatchObject({ status: 503, ms: expect.any(Number) });
    expect(Math.max(...figures.ready.map((probe) => probe.ms))).toBeLessThan(2_000);
    expect(figures.healthSlowestMs).toBeLessThan(500);
    expect(figures.resumptionMs).toBeLessThan(1_000);

    // Every acknowledged spend is in the ledger, none twice, and the balance matches the entries.
    const rows = await database.handle.db
      .select({ key: ledgerEntriesTable.idempotencyKey })
      .from(ledgerEntriesTable)
      .where(and(eq(ledgerEntriesTable.userId, userId), isNotNull(ledgerEntriesTable.idempotencyKey)));
    const keys = rows.map((row) => row.key as string);
    expect(new Set(keys).size).toBe(keys.length);
    for (const key of acknowledged) expect(keys).toContain(key);
    expect((await getBalance(database.handle.db, userId)).balance).toBe(100_000 - keys.length);
  }, 120_000);
});
