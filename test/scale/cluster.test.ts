import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signDevToken } from "../../src/auth/jwt.js";
import { queryRows } from "../../src/db/client.js";
import { JWT_SECRET, newUserId } from "../helpers/app.js";
import {
  type Balancer,
  daemonPath,
  freePort,
  type Helper,
  startHaproxy,
  startPgbouncer,
} from "../helpers/cluster.js";
import { openTestDatabase, serverUrl, type TestDatabase } from "../helpers/database.js";
import { BalanceSubscription, wsClient } from "../helpers/live.js";
import { type LoadUser, startLoad } from "../helpers/load.js";
import { type ServerProcess, startServerProcess } from "../helpers/process.js";
import { deliver, fixture } from "../helpers/revenuecat.js";
import { skipUnlessTool } from "../helpers/tools.js";
import { VersionWatch } from "../helpers/version-watch.js";

/**
 * Three instances behind HAProxy (deploy/haproxy/haproxy.cfg), through PgBouncer 1.18 in transaction
 * mode (deploy/pgbouncer/pgbouncer.ini), with LISTEN and migrations on DATABASE_DIRECT_URL and
 * prepared statements off: the shape docs/scaling.md describes. PostgreSQL only; under CI a missing
 * haproxy or pgbouncer fails the file (.ci/run installs both) instead of skipping it.
 */
// On PGlite there is nothing to pool; under CI a missing tool throws here, failing the file.
const skip =
  !serverUrl ||
  skipUnlessTool("haproxy", daemonPath("haproxy")) ||
  skipUnlessTool("pgbouncer", daemonPath("pgbouncer"));

const SPENDS_PER_MINUTE = 150;
const MIGRATIONS = (
  (await import("../../drizzle/meta/_journal.json", { with: { type: "json" } })).default as {
    entries: unknown[];
  }
).entries.length;

describe.skipIf(skip)("three instances behind HAProxy and PgBouncer (transaction mode)", () => {
  let dir: string;
  let database: TestDatabase;
  let pgbouncer: Helper;
  let balancer: Balancer;
  let instances: ServerProcess[] = [];
  let env: Record<string, string>;
  let ports: number[];

  const startInstance = (port: number) => startServerProcess({ ...env, PORT: String(port) });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "tl-cluster-"));
    database = await openTestDatabase({ migrated: false });
    const [bouncerPort, balancerPort, ...appPorts] = await Promise.all([1, 2, 3, 4, 5].map(() => freePort()));
    ports = appPorts;
    pgbouncer = await startPgbouncer(dir, bouncerPort as number, database.url as string);
    const pooled = new URL(database.url as string);
    pooled.hostname = "127.0.0.1";
    pooled.port = String(bouncerPort);
    env = {
      DATABASE_URL: pooled.toString(),
      DATABASE_DIRECT_URL: database.url as string,
      DATABASE_PREPARE: "false",
      DATABASE_POOL_SIZE: "8",
      SHUTDOWN_DRAIN_MS: "1500",
      RATE_LIMIT_SPEND_PER_MINUTE: String(SPENDS_PER_MINUTE),
      DATA_DIR: dir,
    };
    // All three at once on an empty database: they race to apply the migrations.
    instances = await Promise.all(ports.map((port) => startInstance(port)));
    balancer = await startHaproxy(
      dir,
      balancerPort as number,
      ports.map((port) => `127.0.0.1:${port}`),
    );
    await serverUp(["app1", "app2", "app3"]);
  });

  afterAll(async () => {
    await Promise.all(instances.map((instance) => instance.stop()));
    await balancer?.stop();
    await pgbouncer?.stop();
    await database?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Waits until HAProxy's health checks have put these servers in rotation. */
  async function serverUp(names: readonly string[]): Promise<void> {
    const until = Date.now() + 20_000;
    for (;;) {
      const states = await balancer.states();
      if (names.every((name) => states[name] === "UP")) return;
      if (Date.now() > until) throw new Error(`HAProxy sees ${JSON.stringify(states)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** A new user who bought `product` through a real RevenueCat delivery via the load balancer. */
  async function buyer(product = "token_pack_large"): Promise<LoadUser> {
    const userId = newUserId("scale");
    const body = fixture("NON_RENEWING_PURCHASE__rc-docs", { app_user_id: userId, product_id: product });
    expect((await deliver(balancer.url, body)).body.outcome).toBe("credited");
    return { userId, token: await signDevToken({ secret: JWT_SECRET, userId, expiresIn: "1h" }) };
  }

  async function balanceRow(userId: string): Promise<{ balance: number; version: number; spends: number }> {
    const [row] = await queryRows<{ balance: number; version: number; spends: number }>(
      database.handle.db,
      sql`SELECT b.balance, b.version,
            (SELECT count(*)::int FROM token_transactions t WHERE t.user_id = b.user_id AND t.kind = 'SPEND') AS spends
          FROM token_balances b WHERE b.user_id = ${userId}`,
    );
    if (!row) throw new Error(`no balance for ${userId}`);
    return row;
  }

  function spend(url: string, user: LoadUser, key: string, amount = 1): Promise<Response> {
    return fetch(`${url}/api/v1/tokens/spend`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${user.token}`,
        "content-type": "application/json",
        "idempotency-key": key,
      },
      body: JSON.stringify({ amount, description: "cluster test" }),
    });
  }

  it("three instances starting at once apply the migrations once", async () => {
    const outcomes = instances.map((instance) => /"migrations":"([^"]*)"/.exec(instance.output())?.[1]);
    expect(outcomes.filter((outcome) => outcome === `${MIGRATIONS} applied`)).toHaveLength(1);
    expect(outcomes.filter((outcome) => outcome?.startsWith("none pending"))).toHaveLength(2);
    const [row] = await queryRows<{ rows: number; hashes: number }>(
      database.handle.db,
      sql`SELECT count(*)::int AS rows, count(DISTINCT hash)::int AS hashes FROM drizzle.__drizzle_migrations`,
    );
    expect(row).toEqual({ rows: MIGRATIONS, hashes: MIGRATIONS });
  });

  it("LISTEN bypasses the pooler: one direct listening connection per instance", async () => {
    const [row] = await queryRows<{ listeners: number }>(
      database.handle.db,
      sql`SELECT count(*)::int AS listeners FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = 'token-ledger-listen'`,
    );
    expect(row?.listeners).toBe(3);
  });

  it("spends and webhooks spread over the instances stay exactly-once", async () => {
    const user = await buyer();
    const served = new Set<string>();
    const keys = Array.from({ length: 60 }, (_, index) => `spread-${index}`);
    // Each key twice at once: round robin sends the two copies to different instances.
    const answers = await Promise.all(
      keys.flatMap((key) => [spend(balancer.url, user, key), spend(balancer.url, user, key)]),
    );
    const bodies = await Promise.all(
      answers.map(async (response) => {
        served.add(response.headers.get("x-served-by") ?? "");
        const body = (await response.json()) as { transaction_id: string };
        expect({ status: response.status, body }).toMatchObject({ status: 200 });
        return body;
      }),
    );
    for (let index = 0; index < bodies.length; index += 2) {
      expect(bodies[index]?.transaction_id).toBe(bodies[index + 1]?.transaction_id);
    }
    expect(served).toEqual(new Set(["app1", "app2", "app3"]));
    expect(await balanceRow(user.userId)).toMatchObject({ balance: 1200 - 60, spends: 60 });

    // Ten purchases, each delivered three times at once (RevenueCat retries; here to three instances).
    const buyers = Array.from({ length: 10 }, () => newUserId("scale-buyer"));
    const deliveries = buyers.map((userId) =>
      fixture("NON_RENEWING_PURCHASE__rc-docs", { app_user_id: userId, product_id: "token_pack_small" }),
    );
    const outcomes = await Promise.all(
      deliveries.flatMap((body) => [1, 2, 3].map(() => deliver(balancer.url, body))),
    );
    expect(outcomes.every((outcome) => outcome.status === 200)).toBe(true);
    expect(outcomes.filter((outcome) => outcome.body.outcome === "credited")).toHaveLength(10);
    for (const userId of buyers) expect((await balanceRow(userId)).balance).toBe(100);
  });

  it("a balanceChanged subscriber on one instance sees a spend made through another", async () => {
    const user = await buyer();
    const [first, , third] = instances as [ServerProcess, ServerProcess, ServerProcess];
    const subscription = new BalanceSubscription(wsClient(first.url, `Bearer ${user.token}`));
    try {
      expect((await subscription.next(10_000)).balance).toBe(1200);
      expect((await spend(third.url, user, "cross-instance", 7)).status).toBe(200);
      expect(await subscription.next(10_000)).toMatchObject({ balance: 1193, delta: -7 });
    } finally {
      await subscription.close();
    }
  });

  it("the spend rate limit holds across instances", async () => {
    const user = await buyer("token_pack_medium");
    const statuses = await Promise.all(
      Array.from({ length: SPENDS_PER_MINUTE + 30 }, (_, index) =>
        spend(balancer.url, user, `limit-${index}`).then((response) => response.status),
      ),
    );
    expect(statuses.filter((status) => status === 200)).toHaveLength(SPENDS_PER_MINUTE);
    expect(statuses.filter((status) => status === 429)).toHaveLength(30);
    expect(await balanceRow(user.userId)).toMatchObject({ balance: 500 - SPENDS_PER_MINUTE });
  });

  it("a rolling restart under load fails no request and loses no balance change", async () => {
    const users = await Promise.all(Array.from({ length: 12 }, () => buyer()));
    const watched = users.slice(0, 4);
    // Two subscribers per watched user, connected through the balancer (so on different instances).
    const watches = watched.flatMap((user) =>
      [0, 1].map(() => ({ user, watch: new VersionWatch(balancer.url, user.token) })),
    );
    const load = startLoad({ url: balancer.url, users, workers: 6, perSecond: 40 });
    await new Promise((resolve) => setTimeout(resolve, 1000));

    for (const [index, port] of ports.entries()) {
      const name = `app${index + 1}`;
      expect(await (instances[index] as ServerProcess).stop("SIGTERM")).toBe(0);
      instances[index] = await startInstance(port);
      await serverUp([name]);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const report = await load.stop();

    let missed = 0;
    let bridged = 0;
    for (const { user, watch } of watches) {
      await watch.settle((await balanceRow(user.userId)).version);
      missed += watch.missed;
      bridged += watch.bridged;
      expect(watch.errors).toEqual([]);
      await watch.close();
    }
    for (const user of users) {
      const spent = report.spent.get(user.userId) as Map<string, string>;
      // Exactly once: every acknowledged spend is in the ledger once, and nothing else is.
      expect(await balanceRow(user.userId)).toMatchObject({ balance: 1200 - spent.size, spends: spent.size });
    }
    const figures = {
      requests: report.requests,
      spends: report.spends,
      reads: report.reads,
      failed: report.failed,
      retries: report.retries,
      retriedBecause: report.retriedBecause,
      longestGapMs: report.longestGapMs,
      longestRequestMs: report.longestRequestMs,
      servedBy: report.servedBy,
      subscribers: watches.length,
      reconnects: watches.reduce((sum, { watch }) => sum + watch.connects - 1, 0),
      missedVersions: missed,
      versionsCaughtUpBySnapshot: bridged,
    };
    process.stdout.write(`rolling restart: ${JSON.stringify(figures)}\n`);
    expect(report.failures.slice(0, 5)).toEqual([]);
    expect(missed).toBe(0);
    expect(figures.reconnects).toBeGreaterThan(0);
  }, 120_000);
});
