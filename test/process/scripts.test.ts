import { execFile } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { createTokenVerifier } from "../../src/auth/jwt.js";
import { openDatabase } from "../../src/db/client.js";
import { migrate } from "../../src/db/migrate.js";
import { getBalance } from "../../src/modules/ledger/ledger.queries.js";
import { JWT_SECRET, newUserId, startTestApp } from "../helpers/app.js";
import { driverName, openTestDatabase, serverUrl } from "../helpers/database.js";
import { projectRoot } from "../helpers/process.js";
import { deliver, fixture } from "../helpers/revenuecat.js";

const run = promisify(execFile);
const tsx = (script: string, args: string[], env: Record<string, string | undefined>) =>
  run(process.execPath, ["--import", "tsx", script, ...args], {
    cwd: projectRoot,
    env: { ...process.env, NODE_ENV: "test", LOG_LEVEL: "silent", ...env },
  });

describe("npm run token", () => {
  it("prints a token that the server accepts, with tokens:admin on --admin", async () => {
    const { stdout } = await tsx("src/scripts/dev-token.ts", ["alice", "--admin"], { JWT_SECRET });
    const verify = createTokenVerifier({
      secret: JWT_SECRET,
      jwksUrl: undefined,
      issuer: undefined,
      audience: undefined,
    });
    expect(await verify(stdout.trim())).toMatchObject({ userId: "alice", isAdmin: true });
    const plain = await tsx("src/scripts/dev-token.ts", ["bob"], { JWT_SECRET });
    expect(await verify(plain.stdout.trim())).toMatchObject({ userId: "bob", isAdmin: false });
  });

  it("explains its usage without a user id", async () => {
    await expect(tsx("src/scripts/dev-token.ts", [], { JWT_SECRET })).rejects.toMatchObject({
      stderr: expect.stringContaining("usage"),
    });
  });
});

const jsonLines = (text: string) =>
  text
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as unknown);

describe(`npm run webhooks:reprocess on ${driverName}`, () => {
  it("names the products that are still unmapped, and changes nothing for them", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "tl-reprocess-"));
    const userId = newUserId();
    const testDb = serverUrl ? await openTestDatabase() : undefined;
    const handle = testDb?.handle ?? (await openDatabase({ dataDir }));
    if (!testDb) await migrate(handle);
    const app = await startTestApp({}, { handle, url: testDb?.url, close: async () => {} });
    const body = fixture("NON_RENEWING_PURCHASE__rc-docs", { app_user_id: userId, product_id: "gems_999" });
    expect((await deliver(app.url, body)).body.outcome).toBe("unmapped");
    await app.close();
    if (!testDb) await handle.close();
    try {
      const env = { DATABASE_URL: testDb?.url, DATA_DIR: dataDir, PRODUCT_TOKEN_MAP: '{"gems_250": 250}' };
      const result = await tsx("src/scripts/reprocess-webhooks.ts", [], env);
      expect(jsonLines(result.stdout).at(-1)).toMatchObject({
        outcomes: { unmapped: 1 },
        unmappedProducts: { gems_999: 1 },
      });
      expect(result.stderr).toContain("Still unmapped: gems_999 (1 events). Add them to PRODUCT_TOKEN_MAP");
    } finally {
      await testDb?.close();
    }
  });

  it("credits a kept unmapped purchase once the map knows its product, and a second run changes nothing", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "tl-reprocess-"));
    const userId = newUserId();
    const testDb = serverUrl ? await openTestDatabase() : undefined;
    const handle = testDb?.handle ?? (await openDatabase({ dataDir }));
    if (!testDb) await migrate(handle);
    const app = await startTestApp({}, { handle, url: testDb?.url, close: async () => {} });
    const body = fixture("NON_RENEWING_PURCHASE__rc-docs", { app_user_id: userId, product_id: "gems_250" });
    expect((await deliver(app.url, body)).body.outcome).toBe("unmapped");
    await app.close();
    if (!testDb) await handle.close();

    const env = { DATABASE_URL: testDb?.url, DATA_DIR: dataDir, PRODUCT_TOKEN_MAP: '{"gems_250": 250}' };
    // --help only helps (it used to run the reprocess); --dry-run says what would happen, per event.
    const help = await tsx("src/scripts/reprocess-webhooks.ts", ["--help"], env);
    expect(help.stdout).toContain("usage: npm run webhooks:reprocess");
    const dryRun = await tsx("src/scripts/reprocess-webhooks.ts", ["--dry-run"], env);
    expect(jsonLines(dryRun.stdout)).toEqual([
      expect.objectContaining({
        eventId: body.event.id,
        was: "unmapped",
        wouldDo: "credit",
        detail: `250 tokens to ${userId}`,
      }),
      { reprocessed: 0, outcomes: { credit: 1 }, unmappedProducts: {}, dryRun: true },
    ]);
    const first = await tsx("src/scripts/reprocess-webhooks.ts", [], env);
    expect(jsonLines(first.stdout)).toEqual([
      expect.objectContaining({ eventId: body.event.id, productId: "gems_250", outcome: "credited" }),
      { reprocessed: 1, outcomes: { credited: 1 }, unmappedProducts: {} },
    ]);
    const second = await tsx("src/scripts/reprocess-webhooks.ts", [], env);
    expect(jsonLines(second.stdout)).toEqual([{ reprocessed: 0, outcomes: {}, unmappedProducts: {} }]);

    const check = testDb?.handle ?? (await openDatabase({ dataDir }));
    try {
      expect((await getBalance(check.db, userId)).balance).toBe(250);
    } finally {
      if (testDb) await testDb.close();
      else await check.close();
    }
  }, 180_000);
});
