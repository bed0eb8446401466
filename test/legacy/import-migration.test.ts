import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import pino from "pino";
import { beforeAll, describe, expect, it } from "vitest";
import { getBalance, listEntries } from "../../src/modules/ledger/ledger.queries.js";
import { createLedgerService, type LedgerService } from "../../src/modules/ledger/ledger.service.js";
import { readCustomerExport } from "../../src/modules/legacy/csv-export.js";
import {
  importLegacyBalances,
  type LegacyImportOptions,
} from "../../src/modules/legacy/legacy-import.service.js";
import { JWT_SECRET, newUserId, useTestApp } from "../helpers/app.js";
import { driverName, serverUrl } from "../helpers/database.js";
import { projectRoot, startServerProcess } from "../helpers/process.js";
import { type Delivery, deliver, fixture } from "../helpers/revenuecat.js";

/**
 * The migration from a subscriber attribute as issue 23 found it: purchases made on an old build
 * between the webhook and the import, flagged and anonymous values, customers listed twice, files
 * that are not an export, and a dry run beside a running server.
 */

const run = promisify(execFile);
const PACK = "token_pack_20000";
const t = useTestApp({
  LEGACY_TOKEN_ATTRIBUTE: "tokens",
  PRODUCT_TOKEN_MAP: JSON.stringify({ [PACK]: 20_000, token_pack_small: 100 }),
});
let ledger: LedgerService;
let folder: string;
beforeAll(async () => {
  ledger = createLedgerService({ database: t.db.handle, logger: pino({ level: "silent" }) });
  folder = await mkdtemp(join(tmpdir(), "tl-legacy-migration-"));
});

const RULES = { maxPerUser: 2_000_000_000, flagAbove: 10_000_000, flagRatio: 10 };
const options = (overrides: Partial<LegacyImportOptions> = {}): LegacyImportOptions => ({
  apply: true,
  attribute: "tokens",
  source: "csv:test",
  rules: RULES,
  clearAttribute: false,
  ...overrides,
});

interface Row {
  id: string;
  tokens: string | { value: string; updated_at_ms: number } | null;
  lastSeen?: number | string;
}

/** A Customer Lists export (`;` between fields, attributes as JSON) of these rows. */
async function exportOf(rows: Row[], header = "app_user_id;last_seen_at;custom_attributes"): Promise<string> {
  const cell = (row: Row) =>
    row.tokens === null ? "" : `"${JSON.stringify({ tokens: row.tokens }).replaceAll('"', '""')}"`;
  const lines = rows.map((row) => `${row.id};${row.lastSeen ?? ""};${cell(row)}`);
  const path = join(folder, `export-${randomUUID()}.csv`);
  await writeFile(path, `${header}\n${lines.join("\n")}\n`);
  return path;
}

const importCsv = (path: string, overrides: Partial<LegacyImportOptions> = {}) =>
  importLegacyBalances(
    { db: t.db.handle.db, ledger },
    readCustomerExport(path, "tokens"),
    options(overrides),
  );
const balanceOf = async (userId: string) => (await getBalance(t.db.handle.db, userId)).balance;

/** A real RevenueCat NON_RENEWING_PURCHASE delivery of 20,000 tokens, made on an old app build. */
async function buy(userId: string): Promise<Delivery> {
  const body = fixture("NON_RENEWING_PURCHASE__rc-docs", { app_user_id: userId, product_id: PACK });
  expect((await deliver(t.url, body)).body).toMatchObject({ outcome: "credited" });
  return body;
}

describe(`purchases made between the webhook and the import, on ${driverName}`, () => {
  it("a purchase the webhook credited and the old build added to the attribute is imported once: 1,690 + 20,000 = 21,690", async () => {
    const userId = newUserId("old-build");
    await buy(userId);
    expect(await balanceOf(userId)).toBe(20_000);
    // The old build added the purchase to the attribute: 1,690 + 20,000.
    const path = await exportOf([{ id: userId, tokens: { value: "21690", updated_at_ms: Date.now() } }]);
    const decisions: Record<string, unknown>[] = [];
    const report = await importCsv(path, { onDecision: (d) => decisions.push(d) });
    expect(await balanceOf(userId)).toBe(21_690);
    expect(report.totals).toMatchObject({
      credited: 1,
      creditedTokens: 1690,
      reduced: 1,
      subtractedTokens: 20_000,
    });
    expect(report.reduced).toEqual([
      { customerId: userId, attributeTokens: 21_690, alreadyCredited: 20_000, tokens: 1690 },
    ]);
    expect(decisions).toMatchObject([
      {
        customerId: userId,
        decision: "credited",
        attributeTokens: 21_690,
        alreadyCredited: 20_000,
        tokens: 1690,
      },
    ]);
    const [entry] = await listEntries(t.db.handle.db, userId, { limit: 1 });
    expect(entry).toMatchObject({
      kind: "LEGACY_IMPORT",
      amount: 1690,
      metadata: { rawValue: "21690", attributeTokens: 21_690, alreadyCredited: 20_000 },
    });
  });

  it("--no-subtract-purchases imports the value as it is", async () => {
    const userId = newUserId("no-subtract");
    await buy(userId);
    const path = await exportOf([{ id: userId, tokens: "21690" }]);
    const report = await importCsv(path, { subtractPurchases: false });
    expect(report.totals).toMatchObject({ credited: 1, creditedTokens: 21_690, reduced: 0 });
    expect(await balanceOf(userId)).toBe(41_690);
  });

  it("a purchase refunded before the import is taken back once: the refund by the ledger, the attribute's copy by the subtraction", async () => {
    const userId = newUserId("refunded");
    const bought = await buy(userId);
    const refund = fixture("CANCELLATION__rc-docs-refund", {
      app_user_id: userId,
      transaction_id: bought.event.transaction_id,
      store: bought.event.store,
    });
    expect((await deliver(t.url, refund)).body.outcome).toBe("refunded");
    expect(await balanceOf(userId)).toBe(0);
    await importCsv(await exportOf([{ id: userId, tokens: "21690" }]));
    expect(await balanceOf(userId)).toBe(1690);
  });

  it("never below 0; --since and --until bound which purchases count", async () => {
    const covered = newUserId("covered");
    const early = newUserId("early");
    const late = newUserId("late");
    await buy(covered);
    await buy(early);
    const since = new Date();
    await new Promise((resolve) => setTimeout(resolve, 20));
    const path = await exportOf([
      { id: covered, tokens: "500" },
      { id: early, tokens: "21690" },
      { id: late, tokens: "21690" },
    ]);
    // The dry run counts only purchases credited from `since`: early's came before it.
    const window = await importCsv(path, { apply: false, purchasesSince: since });
    expect(window.reduced).toEqual([]);
    const until = new Date();
    await new Promise((resolve) => setTimeout(resolve, 20));
    await buy(late);
    // Late's purchase came after the export (`until`): it is not in the attribute, so not taken off.
    const report = await importCsv(path, { purchasesUntil: until });
    expect(report.totals).toMatchObject({
      coveredByPurchases: 1,
      credited: 2,
      creditedTokens: 1690 + 21_690,
    });
    expect(await balanceOf(covered)).toBe(20_000);
    expect(await balanceOf(early)).toBe(21_690);
    expect(await balanceOf(late)).toBe(41_690);
  });
});

describe(`what the import holds back by default, on ${driverName}`, () => {
  it("a flagged value (2,000,000,000) is held back unless --include-flagged", async () => {
    const whale = newUserId("whale");
    const path = await exportOf([{ id: whale, tokens: "2000000000" }]);
    const rules = { maxPerUser: 2_000_000_000, flagAbove: 10_000, flagRatio: 10 };
    const held = await importCsv(path, { rules });
    expect(held.totals).toMatchObject({ credited: 0, flagged: 1, heldFlagged: 1 });
    expect(held.flagged).toMatchObject([{ customerId: whale, tokens: 2_000_000_000, imported: false }]);
    expect(await balanceOf(whale)).toBe(0);
    const included = await importCsv(path, { rules, includeFlagged: true });
    expect(included.totals).toMatchObject({ credited: 1, heldFlagged: 0 });
    expect(await balanceOf(whale)).toBe(2_000_000_000);
  });

  it("$RCAnonymousID: customers are listed apart and not credited unless --include-anonymous", async () => {
    const anonymous = `$RCAnonymousID:${randomUUID().replaceAll("-", "")}`;
    const known = newUserId("known");
    const path = await exportOf([
      { id: anonymous, tokens: "40" },
      { id: known, tokens: "60" },
    ]);
    const held = await importCsv(path);
    expect(held.totals).toMatchObject({ credited: 1, anonymous: 1, heldAnonymous: 1 });
    expect(held.anonymous).toEqual([{ customerId: anonymous, tokens: 40, imported: false }]);
    expect(await balanceOf(anonymous)).toBe(0);
    const included = await importCsv(path, { includeAnonymous: true });
    expect(included.totals).toMatchObject({ credited: 1, alreadyImported: 1, heldAnonymous: 0 });
    expect(await balanceOf(anonymous)).toBe(40);
  });
});

describe(`a customer listed twice, on ${driverName}`, () => {
  it("the newest value wins, by updated_at_ms, then last_seen_at, then the later line; dry run and apply count the same", async () => {
    const [a, b, c] = [newUserId("twice-a"), newUserId("twice-b"), newUserId("twice-c")];
    const path = await exportOf([
      { id: a, tokens: "300", lastSeen: 2000 },
      { id: b, tokens: { value: "70", updated_at_ms: 1_767_225_600_000 }, lastSeen: "2026-03-01T00:00:00Z" },
      { id: c, tokens: "5" },
      { id: a, tokens: "100", lastSeen: 1000 },
      { id: b, tokens: { value: "20", updated_at_ms: 1_767_225_500_000 }, lastSeen: "2026-04-01T00:00:00Z" },
      { id: c, tokens: "9" },
    ]);
    const dry = await importCsv(path, { apply: false });
    const applied = await importCsv(path);
    for (const report of [dry, applied]) {
      expect(report.totals).toMatchObject({
        customers: 3,
        credited: 3,
        creditedTokens: 300 + 70 + 9,
        duplicates: 3,
      });
    }
    expect(applied.duplicates).toEqual([
      { customerId: c, line: 4, keptLine: 7 },
      { customerId: a, line: 5, keptLine: 2 },
      { customerId: b, line: 6, keptLine: 3 },
    ]);
    expect([await balanceOf(a), await balanceOf(b), await balanceOf(c)]).toEqual([300, 70, 9]);
  });
});

describe(`the legacyImportFacts query a dry run uses beside a running server, on ${driverName}`, () => {
  const FACTS = `query ($customerIds: [String!]!, $userIds: [String!]!, $until: DateTime!) {
    legacyImportFacts(customerIds: $customerIds, userIds: $userIds, purchasesUntil: $until) {
      imported { customerId }
      purchases { userId allTokens windowTokens }
    }
  }`;

  it("answers admins only, with what the import reads itself, and refuses more than 1,000 ids", async () => {
    const userId = newUserId("facts");
    await buy(userId);
    const variables = { customerIds: [userId], userIds: [userId], until: new Date(Date.now() + 60_000) };
    const user = await t.gql(FACTS, variables, await t.token(userId));
    expect(user.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    const admin = await t.gql(FACTS, variables, await t.token("ops", { admin: true }));
    expect(admin.data).toEqual({
      legacyImportFacts: { imported: [], purchases: [{ userId, allTokens: 20_000, windowTokens: 20_000 }] },
    });
    const tooMany = Array.from({ length: 1001 }, (_, i) => `u${i}`);
    const refused = await t.gql(
      FACTS,
      { ...variables, userIds: tooMany },
      await t.token("ops", { admin: true }),
    );
    expect(refused.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
  });
});

describe("npm run legacy:import", () => {
  const script = ["--import", "tsx", "src/scripts/legacy-import.ts"];
  const env = (extra: Record<string, string> = {}) => ({
    ...process.env,
    NODE_ENV: "test",
    DATA_DIR: folder,
    JWT_SECRET,
    ...(t.db.url ? { DATABASE_URL: t.db.url } : {}),
    ...extra,
  });
  const importing = (args: string[], extra: Record<string, string> = {}) =>
    run(process.execPath, [...script, ...args], { cwd: projectRoot, env: env(extra) }).then(
      (done) => ({ code: 0, stdout: done.stdout, stderr: done.stderr }),
      (failed: { code: number; stdout: string; stderr: string }) => failed,
    );

  it("a file without an app_user_id column, with ',' between fields, or empty, is a clear error and exit 2", async () => {
    const noId = join(folder, "no-id.csv");
    await writeFile(noId, 'user_id;custom_attributes\nu1;"{""tokens"":""5""}"\n');
    const comma = join(folder, "comma.csv");
    await writeFile(comma, 'app_user_id,last_seen_at,custom_attributes\nu1,1,"{""tokens"":""5""}"\n');
    const empty = join(folder, "empty.csv.gz");
    await writeFile(empty, gzipSync(""));
    // Three processes at once: each is a tsx start, slow on a busy machine.
    const [missing, commas, nothing] = await Promise.all([
      importing(["--csv", noId, "--attribute", "tokens"]),
      importing(["--csv", comma, "--attribute", "tokens"]),
      importing(["--csv", empty, "--attribute", "tokens"]),
    ]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("no app_user_id column (the header names: user_id, custom_attributes)");
    expect(commas.code).toBe(2);
    expect(commas.stderr).toContain("a Customer Lists export has ';' between fields");
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toContain("the file is empty");
    expect(`${missing.stderr}${commas.stderr}${nothing.stderr}`).not.toMatch(/^\s+at /m);
  }, 180_000);

  it("malformed lines are in --report with their line number and reason, and the run goes on", async () => {
    const good = newUserId("good");
    const path = join(folder, `malformed-${randomUUID()}.csv`);
    await writeFile(
      path,
      [
        "app_user_id;custom_attributes",
        `;"{""tokens"":""5""}"`,
        `${good};"{""tokens"":""8""}"`,
        `bad"quote;"{}"`,
        `other;"not json"`,
        "",
      ].join("\n"),
    );
    const reportPath = join(folder, `report-${randomUUID()}.jsonl`);
    const done = await importing(["--csv", path, "--attribute", "tokens", "--report", reportPath]);
    expect(done.code).toBe(0);
    const lines = (await readFile(reportPath, "utf8"))
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(lines.filter((line) => line.decision === "malformed")).toEqual([
      { line: 2, decision: "malformed", reason: "no app_user_id" },
      expect.objectContaining({ line: 4, decision: "malformed", reason: expect.stringMatching(/quote/i) }),
      { line: 5, decision: "malformed", reason: "custom_attributes is not a JSON object" },
    ]);
    expect(lines).toContainEqual(
      expect.objectContaining({ customerId: good, decision: "would credit", tokens: 8 }),
    );
  }, 120_000);

  it.skipIf(Boolean(serverUrl))(
    "a dry run reads through the server that holds the embedded database; --apply is still refused",
    async () => {
      const dataDir = await mkdtemp(join(tmpdir(), "tl-legacy-held-"));
      const server = await startServerProcess({
        DATA_DIR: dataDir,
        PRODUCT_TOKEN_MAP: JSON.stringify({ [PACK]: 20_000 }),
      });
      try {
        const userId = newUserId("held");
        const body = fixture("NON_RENEWING_PURCHASE__rc-docs", { app_user_id: userId, product_id: PACK });
        expect((await deliver(server.url, body)).body.outcome).toBe("credited");
        const path = await exportOf([{ id: userId, tokens: "21690" }]);
        const reportPath = join(folder, `held-${randomUUID()}.jsonl`);
        const dry = await importing(["--csv", path, "--attribute", "tokens", "--report", reportPath], {
          DATA_DIR: dataDir,
        });
        expect(dry.code).toBe(0);
        expect(dry.stderr).toContain(`The server at ${server.url} holds ${dataDir}`);
        expect(dry.stdout).toContain("would credit         1 customers, 1690 tokens");
        const [decision] = (await readFile(reportPath, "utf8"))
          .trim()
          .split("\n")
          .map((l) => JSON.parse(l));
        expect(decision).toMatchObject({
          decision: "would credit",
          attributeTokens: 21_690,
          alreadyCredited: 20_000,
        });
        const applied = await importing(["--csv", path, "--attribute", "tokens", "--apply"], {
          DATA_DIR: dataDir,
        });
        expect(applied.code).toBe(2);
        expect(applied.stderr).toContain(`held by the server at ${server.url}`);
        const balance = await fetch(`${server.url}/api/v1/tokens/balance`, {
          headers: { authorization: `Bearer ${await t.token(userId)}` },
        });
        expect(await balance.json()).toMatchObject({ balance: 20_000 });
      } finally {
        await server.stop();
      }
    },
    180_000,
  );
});
