import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative, sep } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTokenVerifier } from "../../src/auth/jwt.js";
import { JWT_SECRET, newUserId, startTestApp } from "../helpers/app.js";
import { driverName, openTestDatabase, serverUrl, type TestDatabase } from "../helpers/database.js";
import { projectRoot } from "../helpers/process.js";
import { deliver, fixture } from "../helpers/revenuecat.js";

const run = promisify(execFile);

/**
 * A production install as `npm ci --omit=dev && npm run build` leaves it, without the dev
 * dependencies (no tsx, no TypeScript): the tsc build of this checkout, package.json, drizzle/, the
 * command runner, and node_modules holding only the production dependencies.
 */
async function productionInstall(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "tl-prod-"));
  await run(process.execPath, [
    join(projectRoot, "node_modules", "typescript", "bin", "tsc"),
    "-p",
    join(projectRoot, "tsconfig.build.json"),
    "--outDir",
    join(root, "dist"),
  ]);
  await cp(join(projectRoot, "package.json"), join(root, "package.json"));
  await cp(join(projectRoot, "drizzle"), join(root, "drizzle"), { recursive: true });
  await mkdir(join(root, "src", "scripts"), { recursive: true });
  await cp(join(projectRoot, "src", "scripts", "run.mjs"), join(root, "src", "scripts", "run.mjs"));
  const { stdout } = await run("npm", ["ls", "--omit=dev", "--all", "--parseable"], { cwd: projectRoot });
  const modules = join(projectRoot, "node_modules");
  for (const path of stdout.split("\n")) {
    const name = relative(modules, path);
    // Top-level packages only (nested ones come with their parent); not the workspace's own client.
    if (
      !path.startsWith(modules + sep) ||
      name.includes(`${sep}node_modules`) ||
      name.startsWith("@token-ledger")
    )
      continue;
    await mkdir(dirname(join(root, "node_modules", name)), { recursive: true });
    await symlink(path, join(root, "node_modules", name)).catch(() => undefined);
  }
  // The embedded database's template made at install, as a production install on PGlite keeps it.
  await symlink(join(modules, ".cache"), join(root, "node_modules", ".cache"));
  return root;
}

let root: string;
const databases: TestDatabase[] = [];
beforeAll(async () => {
  root = await productionInstall();
}, 300_000);
afterAll(async () => {
  for (const database of databases) await database.close();
});

/** `npm run <command>` in the production install: the runner picks the compiled build. */
function command(script: string, args: string[], env: Record<string, string | undefined>) {
  return run(process.execPath, ["src/scripts/run.mjs", script, ...args], {
    cwd: root,
    env: { ...process.env, NODE_ENV: "test", LOG_LEVEL: "silent", ...env },
  });
}

describe(`maintenance commands from the production build on ${driverName}`, () => {
  it("the install has no tsx, and the commands run from dist/", async () => {
    await expect(run(process.execPath, ["-e", "import('tsx')"], { cwd: root })).rejects.toThrow();
    const help = await command("reprocess-webhooks", ["--help"], {});
    expect(help.stdout).toContain("usage: npm run webhooks:reprocess");
    const token = await command("dev-token", ["alice", "--admin"], { JWT_SECRET });
    const verify = createTokenVerifier({
      secret: JWT_SECRET,
      jwksUrl: undefined,
      issuer: undefined,
      audience: undefined,
    });
    expect(await verify(token.stdout.trim())).toMatchObject({ userId: "alice", isAdmin: true });
  });

  it("migrate, then reprocess a kept unmapped purchase, purge and erase a user, all from dist/", async () => {
    const database = serverUrl ? await openTestDatabase({ migrated: false }) : undefined;
    if (database) databases.push(database);
    const dataDir = await mkdtemp(join(tmpdir(), "tl-prod-data-"));
    const env = { DATABASE_URL: database?.url, DATA_DIR: dataDir };
    const migrated = JSON.parse((await command("migrate", [], env)).stdout);
    expect(migrated).toMatchObject({ pending: 0 });

    const userId = newUserId();
    const { openDatabase } = await import("../../src/db/client.js");
    const handle = database?.handle ?? (await openDatabase({ dataDir }));
    const app = await startTestApp(
      { PURGE_INTERVAL_MINUTES: "0" },
      { handle, url: database?.url, close: async () => {} },
    );
    const body = fixture("NON_RENEWING_PURCHASE__rc-docs", { app_user_id: userId, product_id: "gems_250" });
    expect((await deliver(app.url, body)).body.outcome).toBe("unmapped");
    await app.close();
    if (!database) await handle.close();

    const reprocess = await command("reprocess-webhooks", [], {
      ...env,
      PRODUCT_TOKEN_MAP: '{"gems_250": 250}',
    });
    const lines = reprocess.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(lines).toEqual([
      expect.objectContaining({
        eventId: body.event.id,
        productId: "gems_250",
        was: "unmapped",
        outcome: "credited",
      }),
      { reprocessed: 1, outcomes: { credited: 1 }, unmappedProducts: {} },
    ]);
    expect(JSON.parse((await command("purge", [], env)).stdout)).toMatchObject({ webhookBodiesReduced: 0 });
    const erased = JSON.parse((await command("erase-user", [userId], env)).stdout);
    expect(erased).toMatchObject({ webhookBodiesReduced: 1, ledger: { entries: 1, balance: 250 } });
  }, 180_000);
});
