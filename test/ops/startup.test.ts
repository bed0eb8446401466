import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { JWT_SECRET, newUserId, WEBHOOK_SECRET } from "../helpers/app.js";
import { driverName, openTestDatabase, serverUrl, type TestDatabase } from "../helpers/database.js";
import { projectRoot, runUntilExit, startServerProcess } from "../helpers/process.js";
import { deliver, fixture } from "../helpers/revenuecat.js";

const run = promisify(execFile);
const version = JSON.parse(await readFile(join(projectRoot, "package.json"), "utf8")).version as string;

/** The start-up summary: the first log line that carries the listening port. */
function summaryOf(output: string): Record<string, unknown> {
  const line = output.split("\n").find((text) => text.includes('"port":') && text.includes('"version":'));
  if (!line) throw new Error(`no start-up line in:\n${output}`);
  return JSON.parse(line) as Record<string, unknown>;
}

const databases: TestDatabase[] = [];
const roles: string[] = [];
afterAll(async () => {
  for (const database of databases) await database.close();
  if (!serverUrl || roles.length === 0) return;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  for (const role of roles) await admin.unsafe(`DROP ROLE IF EXISTS ${role}`);
  await admin.end();
});

describe(`start-up on ${driverName}`, () => {
  it("production says in one line what it runs with: bound address, version, database without credentials, auth, map, store, metrics, migrations", async () => {
    const database = serverUrl ? await openTestDatabase({ migrated: false }) : undefined;
    if (database) databases.push(database);
    const withPassword = database?.url?.replace(
      "postgres://postgres@",
      "postgres://postgres:pw-never-shown@",
    );
    const dataDir = await mkdtemp(join(tmpdir(), "tl-startup-"));
    const server = await startServerProcess({
      NODE_ENV: "production",
      HOST: "0.0.0.0",
      DATABASE_URL: withPassword,
      ALLOW_EMBEDDED_IN_PRODUCTION: withPassword ? undefined : "true",
      DATA_DIR: dataDir,
      PRODUCT_TOKEN_MAP: '{"gems_100":100,"gems_500":500}',
      SHUTDOWN_DRAIN_MS: "0",
    });
    try {
      const summary = summaryOf(server.output());
      expect(summary).toMatchObject({
        address: "0.0.0.0",
        version,
        environment: "production",
        auth: "HS256 (JWT_SECRET) (any issuer, any audience)",
        products: 2,
        rateLimitStore: "database",
        metricsProtected: false,
        // A new embedded folder starts from the install's template, which may predate newer migrations.
        migrations: expect.stringMatching(database ? /^\d+ applied$/ : /^(none pending|\d+ applied)$/),
      });
      expect(summary.database).toBe(
        database
          ? `PostgreSQL ${new URL(database.url as string).host}${new URL(database.url as string).pathname}`
          : `embedded PGlite in ${dataDir}`,
      );
      expect(String(summary.msg)).toMatch(
        new RegExp(
          `^token-ledger ${version} listening on http://0\\.0\\.0\\.0:\\d+ \\(all interfaces\\); production;`,
        ),
      );
      expect(server.output()).not.toContain("localhost");
      expect(server.output()).not.toContain("pw-never-shown");
      // The warning is its own line, written after the summary: it may arrive in a later chunk.
      await server.waitForOutput("/metrics is open to anyone who can reach this port: set METRICS_TOKEN");
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });

  it("production refuses the embedded database unless ALLOW_EMBEDDED_IN_PRODUCTION=true, saying why", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "tl-startup-"));
    const { code, output } = await runUntilExit({
      NODE_ENV: "production",
      DATA_DIR: dataDir,
      JWT_SECRET,
      REVENUECAT_WEBHOOK_SECRET: WEBHOOK_SECRET,
    });
    expect(code).toBe(1);
    expect(output).toContain("DATABASE_URL: required when NODE_ENV=production");
    expect(output).toContain("ALLOW_EMBEDDED_IN_PRODUCTION=true");
  });
});

/** A role that may only read and write data, with exactly the grants docs/operations.md lists. */
async function runtimeRole(database: TestDatabase): Promise<string> {
  const url = new URL(database.url as string);
  const role = `tl_app_${randomBytes(4).toString("hex")}`;
  roles.push(role);
  const owner = postgres(url.toString(), { max: 1, onnotice: () => {} });
  try {
    await owner.unsafe(`
      CREATE ROLE ${role} LOGIN PASSWORD 'app-password';
      GRANT CONNECT ON DATABASE ${url.pathname.slice(1)} TO ${role};
      GRANT USAGE ON SCHEMA public TO ${role};
      GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${role};
      REVOKE UPDATE, DELETE, TRUNCATE ON token_transactions FROM ${role};
      GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ${role};
      GRANT USAGE ON SCHEMA drizzle TO ${role};
      GRANT SELECT ON drizzle.__drizzle_migrations TO ${role};`);
  } finally {
    await owner.end();
  }
  url.username = role;
  url.password = "app-password";
  return url.toString();
}

describe.runIf(serverUrl)("migrations and database privileges on postgres", () => {
  it("MIGRATE_ON_START=false starts unmigrated with /ready 503 until npm run migrate applies them", async () => {
    const database = await openTestDatabase({ migrated: false });
    databases.push(database);
    const env = { DATABASE_URL: database.url, MIGRATE_ON_START: "false" };
    const server = await startServerProcess(env);
    try {
      expect(summaryOf(server.output()).migrations).toMatch(
        /^skipped \(MIGRATE_ON_START=false; \d+ pending\)$/,
      );
      expect(server.output()).toContain("migrations pending: run npm run migrate");
      expect((await fetch(`${server.url}/ready`)).status).toBe(503);
      const { stdout } = await run(process.execPath, ["src/scripts/run.mjs", "migrate"], {
        cwd: projectRoot,
        env: { ...process.env, NODE_ENV: "test", LOG_LEVEL: "silent", ...env },
      });
      expect(JSON.parse(stdout)).toMatchObject({ applied: expect.any(Number), pending: 0 });
      expect((await fetch(`${server.url}/ready`)).status).toBe(200);
    } finally {
      await server.stop();
    }
  }, 180_000);

  it("a role that may only read and write data: refused at migration with the database's reason, serves once migrated", async () => {
    const database = await openTestDatabase({ migrated: false });
    databases.push(database);
    // Migrate only the role grants need to exist: the owner applies, the runtime role is then made.
    await run(process.execPath, ["src/scripts/run.mjs", "migrate"], {
      cwd: projectRoot,
      env: { ...process.env, NODE_ENV: "test", LOG_LEVEL: "silent", DATABASE_URL: database.url },
    });
    const appUrl = await runtimeRole(database);

    // Pending migrations with the runtime role: the cause is said, and what to do.
    const fresh = await openTestDatabase({ migrated: false });
    databases.push(fresh);
    const freshApp = await runtimeRoleOn(fresh, appUrl);
    const refused = await runUntilExit({
      DATABASE_URL: freshApp,
      JWT_SECRET,
      REVENUECAT_WEBHOOK_SECRET: WEBHOOK_SECRET,
    });
    expect(refused.code).toBe(1);
    expect(refused.output).toMatch(
      /migrations could not be applied: permission denied for (database|schema)/,
    );
    expect(refused.output).toContain("MIGRATE_ON_START=false");
    expect(refused.output).not.toContain("app-password");

    // Nothing pending: the runtime role starts (the migrator is not run) and serves money paths.
    const server = await startServerProcess({ DATABASE_URL: appUrl });
    try {
      expect((await fetch(`${server.url}/ready`)).status).toBe(200);
      const userId = newUserId();
      const purchase = fixture("NON_RENEWING_PURCHASE__rc-docs", {
        app_user_id: userId,
        product_id: "token_pack_small",
      });
      expect((await deliver(server.url, purchase)).body.outcome).toBe("credited");
      const { signDevToken } = await import("../../src/auth/jwt.js");
      const token = await signDevToken({ secret: JWT_SECRET, userId, expiresIn: "1h" });
      const spend = await fetch(`${server.url}/api/v1/tokens/spend`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ amount: 10, description: "hint" }),
      });
      expect(await spend.json()).toMatchObject({ success: true, new_balance: 90 });
      // The maintenance commands run with it too.
      for (const command of [["purge"], ["erase-user", userId]]) {
        await run(process.execPath, ["src/scripts/run.mjs", ...command], {
          cwd: projectRoot,
          env: { ...process.env, NODE_ENV: "test", LOG_LEVEL: "silent", DATABASE_URL: appUrl },
        });
      }
    } finally {
      await server.stop();
    }
  }, 240_000);
});

/** The same role's URL pointed at another database, with CONNECT there and nothing else. */
async function runtimeRoleOn(database: TestDatabase, appUrl: string): Promise<string> {
  const role = new URL(appUrl).username;
  const url = new URL(database.url as string);
  const owner = postgres(url.toString(), { max: 1, onnotice: () => {} });
  try {
    await owner.unsafe(`GRANT CONNECT ON DATABASE ${url.pathname.slice(1)} TO ${role}`);
  } finally {
    await owner.end();
  }
  url.username = role;
  url.password = "app-password";
  return url.toString();
}
