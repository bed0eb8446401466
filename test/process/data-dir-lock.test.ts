import { execFile } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { openDatabase } from "../../src/db/client.js";
import { DataDirInUseError } from "../../src/db/data-dir-lock.js";
import { getBalance } from "../../src/modules/ledger/ledger.queries.js";
import { JWT_SECRET, newUserId, WEBHOOK_SECRET } from "../helpers/app.js";
import { serverUrl } from "../helpers/database.js";
import { projectRoot, runUntilExit, startServerProcess } from "../helpers/process.js";
import { deliver, fixture } from "../helpers/revenuecat.js";

const run = promisify(execFile);

/** Starts a second server on the same folder; it is expected to refuse and exit. */
const startAndExit = (dataDir: string) => runUntilExit({ PORT: "0", DATA_DIR: dataDir, JWT_SECRET });

describe.skipIf(Boolean(serverUrl))("the embedded database belongs to one process", () => {
  it("a second server on the same DATA_DIR exits at once, naming the holder; the first keeps serving", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "tl-lock-"));
    const first = await startServerProcess({ DATA_DIR: dataDir });
    try {
      const second = await startAndExit(dataDir);
      expect(second.code).toBe(1);
      expect(second.output).toContain(`DATA_DIR ${dataDir} is in use by process ${first.child.pid}`);
      expect(second.output).toContain(`serving ${first.url}`);
      expect(second.output).toMatch(/set DATA_DIR to another folder, or set DATABASE_URL/);
      expect(second.output).not.toMatch(/^\s+at /m);
      expect((await fetch(`${first.url}/health`)).status).toBe(200);
      // Opening it in this process is refused the same way.
      await expect(openDatabase({ dataDir })).rejects.toBeInstanceOf(DataDirInUseError);
    } finally {
      await first.stop();
    }
    // Once the holder has stopped, the folder opens again.
    const reopened = await openDatabase({ dataDir });
    await reopened.close();
  });

  it("a holder killed with SIGKILL does not keep the folder: the next start takes it at once", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "tl-lock-kill-"));
    const first = await startServerProcess({ DATA_DIR: dataDir });
    await first.stop("SIGKILL");
    const second = await startServerProcess({ DATA_DIR: dataDir });
    try {
      expect((await fetch(`${second.url}/health`)).status).toBe(200);
    } finally {
      await second.stop();
    }
  });

  it("webhooks:reprocess against a running server's DATA_DIR goes through that server, which keeps serving", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "tl-lock-reprocess-"));
    const userId = newUserId();
    const before = await startServerProcess({ DATA_DIR: dataDir });
    const body = fixture("NON_RENEWING_PURCHASE__rc-docs", { app_user_id: userId, product_id: "gems_250" });
    expect((await deliver(before.url, body)).body.outcome).toBe("unmapped");
    await before.stop();

    // The operator fixes the map and restarts the server; the kept event is then reprocessed. Admins
    // are named by a claim of the operator's choosing, which the command's own token must carry too.
    const admins = { JWT_ADMIN_CLAIM: "permissions", JWT_ADMIN_VALUE: "ledger:admin" };
    const map = { PRODUCT_TOKEN_MAP: '{"gems_250": 250}' };
    const server = await startServerProcess({ DATA_DIR: dataDir, ...map, ...admins });
    try {
      const env = {
        ...process.env,
        NODE_ENV: "test",
        LOG_LEVEL: "silent",
        DATA_DIR: dataDir,
        JWT_SECRET,
        ...admins,
      };
      const script = ["--import", "tsx", "src/scripts/reprocess-webhooks.ts"];
      const first = await run(process.execPath, script, { cwd: projectRoot, env, timeout: 30_000 });
      expect(JSON.parse(first.stdout)).toEqual({ reprocessed: 1, outcomes: { credited: 1 } });
      expect(first.stderr).toContain(`The server at ${server.url} holds ${dataDir}`);
      const second = await run(process.execPath, script, { cwd: projectRoot, env, timeout: 30_000 });
      expect(JSON.parse(second.stdout)).toEqual({ reprocessed: 0, outcomes: {} });

      expect((await fetch(`${server.url}/health`)).status).toBe(200);
      const token = await fetch(`${server.url}/api/v1/tokens/webhook/revenuecat`, {
        method: "POST",
        headers: { authorization: `Bearer ${WEBHOOK_SECRET}`, "content-type": "application/json" },
        body: JSON.stringify(fixture("TEST__rudderstack-transformer")),
      });
      expect(token.status).toBe(200);
    } finally {
      await server.stop();
    }
    const database = await openDatabase({ dataDir });
    try {
      expect((await getBalance(database.db, userId)).balance).toBe(250);
    } finally {
      await database.close();
    }
  });
});
