import { once } from "node:events";
import { existsSync } from "node:fs";
import { mkdtemp, readFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { and, eq, isNotNull } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signDevToken } from "../../src/auth/jwt.js";
import { type DatabaseHandle, openDatabase } from "../../src/db/client.js";
import { ledgerEntriesTable } from "../../src/db/schema.js";
import { getBalance } from "../../src/modules/ledger/ledger.queries.js";
import { JWT_SECRET, newUserId } from "../helpers/app.js";
import { ensureBuilt, serverEntry } from "../helpers/build-entry.js";
import { driverName, openTestDatabase, serverUrl, type TestDatabase } from "../helpers/database.js";
import { projectRoot, runUntilExit, serverEnv, startServerProcess } from "../helpers/process.js";
import { OutageProxy } from "../helpers/tcp-proxy.js";
import { ENTRY_COMMANDS, startTestServer } from "../helpers/test-server.js";

/** The entry under test (TEST_SERVER_ENTRY): the sources, the npm start bundle or the tsc build. */
async function startEntry(env: Record<string, string | undefined>) {
  await ensureBuilt(serverEntry);
  return startServerProcess(env, [...ENTRY_COMMANDS[serverEntry]]);
}

const token = (userId: string, admin = false) =>
  signDevToken({ secret: JWT_SECRET, userId, admin, expiresIn: "1h" });

describe(`graceful shutdown on ${driverName}`, () => {
  let database: TestDatabase | undefined;
  afterAll(async () => {
    await database?.close();
  });

  it("SIGTERM in the middle of 300 concurrent spends: every acknowledged spend is in the ledger, none twice, exit 0", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "tl-shutdown-"));
    database = serverUrl ? await openTestDatabase() : undefined;
    const server = await startEntry({ DATA_DIR: dataDir, DATABASE_URL: database?.url });
    const userId = newUserId();
    const grant = await fetch(`${server.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${await token("ops", true)}` },
      body: JSON.stringify({
        query: `mutation { grantTokens(input: { userId: "${userId}", amount: 1000, reason: "setup" }) { success } }`,
      }),
    });
    expect(await grant.json()).toEqual({ data: { grantTokens: { success: true } } });

    const userToken = await token(userId);
    let answered = 0;
    let exited: Promise<number | null> | undefined;
    const spends = Array.from({ length: 300 }, async (_, i) => {
      try {
        const response = await fetch(`${server.url}/api/v1/tokens/spend`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${userToken}`,
            "content-type": "application/json",
            "idempotency-key": `k${i}`,
          },
          body: JSON.stringify({ amount: 1, description: `spend ${i}` }),
        });
        const body = (await response.json()) as { success?: boolean };
        return { key: `k${i}`, acknowledged: response.status === 200 && body.success === true };
      } catch {
        return { key: `k${i}`, acknowledged: false };
      } finally {
        answered += 1;
        if (answered === 40) exited = server.stop("SIGTERM");
      }
    });
    const results = await Promise.all(spends);
    const code = await (exited ?? server.stop("SIGTERM"));
    expect(code).toBe(0);
    expect(server.output()).toContain("stopped cleanly");

    const acknowledged = results.filter((r) => r.acknowledged).map((r) => r.key);
    expect(acknowledged.length).toBeGreaterThanOrEqual(40);
    const handle: DatabaseHandle = database ? database.handle : await openDatabase({ dataDir });
    try {
      const rows = await handle.db
        .select({ key: ledgerEntriesTable.idempotencyKey })
        .from(ledgerEntriesTable)
        .where(and(eq(ledgerEntriesTable.userId, userId), isNotNull(ledgerEntriesTable.idempotencyKey)));
      const keys = rows.map((row) => row.key as string);
      expect(new Set(keys).size).toBe(keys.length);
      for (const key of acknowledged) expect(keys).toContain(key);
      expect((await getBalance(handle.db, userId)).balance).toBe(1000 - keys.length);
    } finally {
      if (!database) await handle.close();
    }
  });

  it.skipIf(Boolean(serverUrl))(
    "npm start stops cleanly on SIGTERM although npm does not pass signals on by itself",
    async () => {
      const dataDir = await mkdtemp(join(tmpdir(), "tl-npm-"));
      const server = await startServerProcess({ DATA_DIR: dataDir }, ["npm", "start", "--silent"]);
      expect((await fetch(`${server.url}/health`)).status).toBe(200);
      const code = await server.stop("SIGTERM");
      // npm reports the signal its child ended with, or 0; the server itself must have stopped cleanly.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(server.output()).toContain("stopped cleanly");
      await expect(fetch(`${server.url}/health`)).rejects.toThrow();
      expect([0, 143, null]).toContain(code);
    },
  );
});

describe(`process lifecycle on ${driverName}`, () => {
  it("a server started with nohup from a script keeps serving after the script exits", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "tl-nohup-"));
    const database = serverUrl ? await openTestDatabase() : undefined;
    const log = join(dataDir, "server.log");
    const script = `nohup "${process.execPath}" --import tsx src/main.ts > "${log}" 2>&1 & echo $!`;
    const { stdout } = await runShell(script, { DATA_DIR: dataDir, DATABASE_URL: database?.url });
    const pid = Number(stdout.trim());
    try {
      const port = await waitForPort(() => readFile(log, "utf8").catch(() => ""));
      // The script has exited; the server it left behind must still be there a while later.
      await new Promise((resolve) => setTimeout(resolve, 2000));
      expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
    } finally {
      process.kill(pid, "SIGTERM");
      await waitForExit(pid);
      await database?.close();
    }
  });

  it.skipIf(Boolean(serverUrl))(
    "a busy port exits 1 with one line, before the embedded database is opened",
    async () => {
      const dataDir = await mkdtemp(join(tmpdir(), "tl-port-"));
      const busy = createServer();
      busy.listen(0, "127.0.0.1");
      await once(busy, "listening");
      const port = (busy.address() as { port: number }).port;
      try {
        const { code, output } = await runUntilExit({ PORT: String(port), DATA_DIR: dataDir });
        expect(code).toBe(1);
        expect(output).toContain(`Port ${port} is in use; set PORT`);
        expect(output).not.toMatch(/^\s+at /m);
        expect(existsSync(join(dataDir, "pglite"))).toBe(false);
      } finally {
        busy.close();
      }
    },
  );
});

async function runShell(
  script: string,
  env: Record<string, string | undefined>,
): Promise<{ stdout: string }> {
  const { execFile } = await import("node:child_process");
  return new Promise((resolve, reject) => {
    execFile("sh", ["-c", script], { cwd: projectRoot, env: serverEnv(env) }, (error, stdout) =>
      error ? reject(error) : resolve({ stdout }),
    );
  });
}

async function waitForPort(read: () => Promise<string>): Promise<string> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const port = /"port":(\d+)/.exec(await read())?.[1];
    if (port) return port;
    if (Date.now() > deadline) throw new Error(`no port in the log:\n${await read()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function waitForExit(pid: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`process ${pid} did not exit within ${timeoutMs} ms`);
}

describe.skipIf(!serverUrl)("database outage (real PostgreSQL behind a proxy the test controls)", () => {
  let database: TestDatabase;
  let proxy: OutageProxy;
  beforeAll(async () => {
    database = await openTestDatabase();
    const url = new URL(database.url as string);
    proxy = new OutageProxy({ host: url.hostname, port: Number(url.port || 5432) });
    await proxy.open();
  });
  afterAll(async () => {
    await proxy.cut();
    await database.close();
  });

  it("a stop finishes within its deadline when the database stops answering, and says so", async () => {
    const url = proxy.urlFor(database.url as string);
    const server = await startEntry({ DATABASE_URL: url, SHUTDOWN_TIMEOUT_MS: "500" });
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
    proxy.freeze();
    const started = Date.now();
    const code = await server.stop("SIGTERM");
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(code).toBe(1);
    expect(server.output()).toMatch(/shutdown did not finish within \d+ ms; exiting anyway/);
    await proxy.cut();
    await proxy.open();
  });

  it("fails fast with 503 / DATABASE_UNAVAILABLE while cut, and recovers by itself when restored", async () => {
    const url = proxy.urlFor(database.url as string);
    const handle = await openDatabase({ url, poolSize: 5 });
    const app = await startTestServer({}, { handle, url, close: () => handle.close() });
    try {
      const userId = newUserId();
      const userToken = await app.token(userId);
      const balance = () =>
        fetch(`${app.url}/api/v1/tokens/balance`, { headers: { authorization: `Bearer ${userToken}` } });
      expect((await balance()).status).toBe(200);

      await proxy.cut();
      const started = Date.now();
      const rest = await balance();
      expect(rest.status).toBe(503);
      expect(await rest.json()).toMatchObject({ error: { code: "DATABASE_UNAVAILABLE" } });
      const gql = await app.gql("{ balance { balance } }", {}, userToken);
      expect(gql.errors?.[0]?.extensions?.code).toBe("DATABASE_UNAVAILABLE");
      expect((await fetch(`${app.url}/ready`)).status).toBe(503);
      expect((await fetch(`${app.url}/health`)).status).toBe(200);
      expect(Date.now() - started).toBeLessThan(5000);

      await proxy.open();
      const deadline = Date.now() + 15_000;
      let status = 0;
      while (Date.now() < deadline && status !== 200) {
        status = (await balance()).status;
        if (status !== 200) await new Promise((resolve) => setTimeout(resolve, 200));
      }
      expect(status).toBe(200);
      expect((await fetch(`${app.url}/ready`)).status).toBe(200);
    } finally {
      await app.close();
      await handle.close();
    }
  });
});
