import { execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { sql } from "drizzle-orm";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queryRows } from "../../src/db/client.js";
import { getBalance } from "../../src/modules/ledger/ledger.queries.js";
import { createLedgerService, type LedgerService } from "../../src/modules/ledger/ledger.service.js";
import { readCustomersFromApi } from "../../src/modules/legacy/api-customers.js";
import { readCustomerExport } from "../../src/modules/legacy/csv-export.js";
import {
  importLegacyBalances,
  type LegacyImportOptions,
} from "../../src/modules/legacy/legacy-import.service.js";
import { createRevenuecatApi } from "../../src/modules/legacy/revenuecat-api.js";
import { useTestApp } from "../helpers/app.js";
import { driverName, serverUrl } from "../helpers/database.js";
import { type FakeCustomer, FakeRevenuecatApi } from "../helpers/fake-revenuecat-api.js";
import { BalanceSubscription, wsClient } from "../helpers/live.js";
import { projectRoot, startServerProcess } from "../helpers/process.js";
import { deliver, fixture } from "../helpers/revenuecat.js";

const run = promisify(execFile);
const t = useTestApp({ LEGACY_TOKEN_ATTRIBUTE: "tokens" });
let ledger: LedgerService;
let folder: string;
beforeAll(async () => {
  ledger = createLedgerService({ database: t.db.handle, logger: pino({ level: "silent" }) });
  folder = await mkdtemp(join(tmpdir(), "tl-legacy-"));
});

const RULES = { maxPerUser: 1_000_000_000, flagAbove: 10_000, flagRatio: 10 };
const options = (overrides: Partial<LegacyImportOptions> = {}): LegacyImportOptions => ({
  apply: false,
  attribute: "tokens",
  source: "csv:customer-list.csv",
  rules: RULES,
  clearAttribute: false,
  ...overrides,
});

/** The fixture export with this run's own user ids, written gzipped as the dashboard sends it. */
async function exportFile(gzipped = true): Promise<{ path: string; id: (name: string) => string }> {
  const run = `-${randomUUID().slice(0, 8)}`;
  const text = readFileSync(
    new URL("../fixtures/legacy/customer-list.csv", import.meta.url),
    "utf8",
  ).replaceAll("{run}", run);
  const path = join(folder, `export${run}.csv${gzipped ? ".gz" : ""}`);
  await writeFile(path, gzipped ? gzipSync(text) : text);
  return { path, id: (name) => `${name}${run}` };
}

const balanceOf = async (userId: string) => (await getBalance(t.db.handle.db, userId)).balance;
const importCsv = (path: string, overrides: Partial<LegacyImportOptions> = {}) =>
  importLegacyBalances(
    { db: t.db.handle.db, ledger },
    readCustomerExport(path, "tokens"),
    options(overrides),
  );

async function legacyEntries(
  userIds: string[],
): Promise<{ user_id: string; amount: number; metadata: unknown }[]> {
  return queryRows(
    t.db.handle.db,
    sql`SELECT user_id, amount, metadata FROM token_transactions
         WHERE kind = 'LEGACY_IMPORT' AND user_id IN (${sql.join(
           userIds.map((id) => sql`${id}`),
           sql`, `,
         )})`,
  );
}

describe(`legacy import from a Customer Lists export on ${driverName}`, () => {
  it("a dry run reports what it would credit, refuses bad values with reasons, and writes nothing", async () => {
    const { path, id } = await exportFile();
    const report = await importCsv(path);
    expect(report.totals).toMatchObject({
      customers: 13,
      credited: 3,
      creditedTokens: 500 + 1200 + 75,
      refused: 4,
      flagged: 1,
      heldFlagged: 1,
      anonymous: 1,
      heldAnonymous: 1,
      zero: 1,
      noAttribute: 3,
      alreadyImported: 0,
    });
    expect(report.refused.map((r) => [r.customerId, r.reason])).toEqual([
      [id("dave"), "not a whole number of tokens"],
      [id("erin"), "not a whole number of tokens"],
      [id("frank"), "not a whole number of tokens"],
      [id("judy"), "above the balance cap of 2000000000"],
    ]);
    expect(report.flagged).toMatchObject([{ customerId: id("ivan"), tokens: 99999 }]);
    expect(report.nearMatches).toEqual([{ customerId: id("mallory"), names: ["Tokens"] }]);
    expect(await legacyEntries([id("alice"), id("bob"), id("carol")])).toEqual([]);
    expect(await balanceOf(id("alice"))).toBe(0);
  });

  it("--apply credits each customer once, live, with the source, raw value and updated_at; a second run credits nothing", async () => {
    const { path, id } = await exportFile();
    const subscription = new BalanceSubscription(wsClient(t.url, `Bearer ${await t.token(id("alice"))}`));
    try {
      expect(await subscription.next()).toMatchObject({ balance: 0 });
      const report = await importCsv(path, { apply: true, includeFlagged: true, includeAnonymous: true });
      expect(report.totals).toMatchObject({ credited: 5, creditedTokens: 101_814, refused: 4 });
      expect(await subscription.next()).toMatchObject({
        balance: 500,
        delta: 500,
        transaction: { kind: "LEGACY_IMPORT" },
      });
    } finally {
      await subscription.close();
    }
    expect(await balanceOf(id("alice"))).toBe(500);
    expect(await balanceOf(id("bob"))).toBe(1200);
    expect(await balanceOf(id("carol"))).toBe(75);
    expect(await balanceOf(id("$RCAnonymousID:kim"))).toBe(40);
    expect(await balanceOf(id("dave"))).toBe(0);
    const [bob] = await legacyEntries([id("bob")]);
    expect(bob?.metadata).toEqual({
      source: "csv:customer-list.csv",
      attribute: "tokens",
      rawValue: "1200",
      updatedAt: "2026-01-01T00:00:00.000Z",
      customerId: id("bob"),
    });

    const again = await importCsv(path, { apply: true, includeFlagged: true, includeAnonymous: true });
    expect(again.totals).toMatchObject({ credited: 0, alreadyImported: 5, refused: 4 });
    expect(await balanceOf(id("alice"))).toBe(500);
    expect(await legacyEntries([id("alice"), id("bob"), id("carol"), id("ivan")])).toHaveLength(4);
  });

  it("reads a plain (not gzipped) export the same way, and holds flagged and anonymous values back by default", async () => {
    const { path, id } = await exportFile(false);
    const report = await importCsv(path, { apply: true });
    expect(report.totals).toMatchObject({ credited: 3, heldFlagged: 1, heldAnonymous: 1 });
    expect(await balanceOf(id("ivan"))).toBe(0);
    expect(await balanceOf(id("carol"))).toBe(75);
  });

  it("two runs at the same moment credit each customer once", async () => {
    const { path, id } = await exportFile();
    const all = { apply: true, includeFlagged: true, includeAnonymous: true };
    const [a, b] = await Promise.all([importCsv(path, all), importCsv(path, all)]);
    expect(a.totals.credited + b.totals.credited).toBe(5);
    expect(a.totals.alreadyImported + b.totals.alreadyImported).toBe(5);
    expect(await balanceOf(id("bob"))).toBe(1200);
    expect(
      await legacyEntries([id("alice"), id("bob"), id("carol"), id("ivan"), id("$RCAnonymousID:kim")]),
    ).toHaveLength(5);
  });

  it("a user already near the cap is refused, not clipped", async () => {
    const { path, id } = await exportFile();
    await ledger.grant({ userId: id("bob"), amount: 1_999_999_000, reason: "near the cap" }, "test");
    const report = await importCsv(path, { apply: true });
    expect(report.refused.find((r) => r.customerId === id("bob"))?.reason).toBe(
      "the user's balance would pass the cap",
    );
    expect(await balanceOf(id("bob"))).toBe(1_999_999_000);
  });

  it("after the switch, a webhook still carrying the attribute for an imported user credits nothing and is counted", async () => {
    const { path, id } = await exportFile();
    await importCsv(path, { apply: true });
    const attributes = { tokens: { value: "999999", updated_at_ms: Date.now() } };
    const before = await balanceOf(id("alice"));
    const old = fixture("CANCELLATION__rc-docs", {
      app_user_id: id("alice"),
      subscriber_attributes: attributes,
    });
    expect((await deliver(t.url, old)).body.outcome).toBe("ignored");
    // A user who was never imported is not counted.
    const fresh = fixture("CANCELLATION__rc-docs", {
      app_user_id: `fresh-${randomUUID()}`,
      subscriber_attributes: attributes,
    });
    await deliver(t.url, fresh);
    expect(await balanceOf(id("alice"))).toBe(before);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toMatch(/^token_legacy_attribute_seen_total 1$/m);
    expect(
      t.logs.lines.some((line) => line.userId === id("alice") && /old app build/.test(String(line.msg))),
    ).toBe(true);
  });
});

describe(`legacy import through RevenueCat's API v2 on ${driverName}`, () => {
  let fake: FakeRevenuecatApi;
  beforeAll(async () => {
    fake = new FakeRevenuecatApi();
    await fake.start();
  });
  afterAll(() => fake.stop());

  function customers(count: number, value = (i: number) => String(10 + i)) {
    const run = randomUUID().slice(0, 8);
    const ids = Array.from({ length: count }, (_, i) => `api-${run}-${i}`);
    ids.forEach((id, i) => {
      fake.customers.set(id, {
        attributes: {
          tokens: { value: value(i), updated_at: 1767225600000 },
          other: { value: "x", updated_at: 1 },
        },
      });
    });
    return ids;
  }
  const api = (rate = 6000) =>
    createRevenuecatApi({
      baseUrl: fake.url,
      projectId: fake.projectId,
      apiKey: fake.apiKey,
      ratePerMinute: rate,
    });
  async function idsFile(ids: string[]): Promise<string> {
    const path = join(folder, `ids-${randomUUID()}.txt`);
    await writeFile(path, `# legacy users\n${ids.join("\n")}\n\n`);
    return path;
  }
  const importIds = async (ids: string[], overrides: Partial<LegacyImportOptions> = {}, client = api()) =>
    importLegacyBalances(
      { db: t.db.handle.db, ledger, api: client },
      readCustomersFromApi(client, await idsFile(ids), "tokens"),
      {
        ...options({ source: "revenuecat-api", apply: true }),
        ...overrides,
      },
    );

  it("imports each customer once: 404 is 'not a customer', an alias of one already read is skipped", async () => {
    const ids = customers(4);
    const aliasOfFirst = `alias-${randomUUID()}`;
    const first = fake.customers.get(ids[0] as string) as FakeCustomer;
    fake.customers.set(ids[0] as string, { ...first, aliases: [aliasOfFirst] });
    const report = await importIds([...ids, aliasOfFirst, `nobody-${randomUUID()}`]);
    expect(report.totals).toMatchObject({ customers: 4, credited: 4, aliases: 1, notFound: 1 });
    expect(await Promise.all(ids.map(balanceOf))).toEqual([10, 11, 12, 13]);
  });

  it("stays under the configured rate, as the fake measures it", async () => {
    const ids = customers(12);
    const from = fake.requests.length;
    const started = Date.now();
    await importIds(ids, {}, api(600));
    const seen = fake.requests.slice(from);
    // Two requests a customer (aliases, attributes) at 10 a second: at least 2.2 s, never 11 in a second.
    expect(seen).toHaveLength(24);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2200);
    for (const request of seen) {
      expect(
        seen.filter((other) => other.at >= request.at && other.at < request.at + 1000).length,
      ).toBeLessThanOrEqual(11);
    }
  });

  it("obeys 429 (backoff_ms, Retry-After) and retries 423 and 500, reading everything", async () => {
    const ids = customers(3);
    fake.script.push(
      { status: 429, backoffMs: 1200 },
      { status: 423, backoffMs: 100 },
      { status: 429, retryAfterSeconds: 1 },
    );
    fake.script.push({ status: 500 });
    const from = fake.requests.length;
    const report = await importIds(ids);
    expect(report.totals).toMatchObject({ credited: 3, unreadable: 0 });
    const seen = fake.requests.slice(from);
    expect(seen[0]?.status).toBe(429);
    expect((seen[1]?.at ?? 0) - (seen[0]?.at ?? 0)).toBeGreaterThanOrEqual(1150);
  });

  it("a failure mid-run reports every id it could not read; the next run resumes and credits each once", async () => {
    const ids = customers(10);
    fake.failFrom = fake.requests.length + 9;
    const first = await importIds(ids, {}, createRevenuecatApi({ ...apiOptions(), attempts: 2 }));
    fake.failFrom = undefined;
    expect(first.totals.unreadable).toBeGreaterThan(0);
    expect(first.totals.credited + first.totals.unreadable).toBe(10);
    const second = await importIds(ids);
    expect(second.totals).toMatchObject({
      alreadyImported: first.totals.credited,
      credited: first.totals.unreadable,
    });
    expect(await Promise.all(ids.map(balanceOf))).toEqual(ids.map((_, i) => 10 + i));
  });

  function apiOptions() {
    return { baseUrl: fake.url, projectId: fake.projectId, apiKey: fake.apiKey, ratePerMinute: 6000 };
  }

  it("--clear-attribute deletes only after a committed import; a failed clear is retried, never undoing the import", async () => {
    const ids = customers(4, (i) => (i === 3 ? "not-a-number" : "25"));
    const committed: string[] = [];
    fake.onDelete = async (customerId) => {
      const entries = await legacyEntries([customerId]);
      if (entries.length === 1) committed.push(customerId);
    };
    fake.failingDeletes.add(ids[1] as string);
    const first = await importIds(ids, { clearAttribute: true });
    expect(first.totals).toMatchObject({ credited: 3, refused: 1, cleared: 2, clearFailed: 1 });
    expect(committed.sort()).toEqual([ids[0], ids[2]].sort());
    expect(fake.customers.get(ids[3] as string)?.attributes.tokens?.value).toBe("not-a-number");
    fake.failingDeletes.clear();
    const second = await importIds(ids, { clearAttribute: true });
    expect(second.totals).toMatchObject({ credited: 0, cleared: 1, clearFailed: 0 });
    expect(committed).toContain(ids[1]);
    expect(fake.customers.get(ids[1] as string)?.attributes.tokens?.value).toBeNull();
    expect(await balanceOf(ids[1] as string)).toBe(25);
    fake.onDelete = undefined;
  });
});

describe("npm run legacy:import", () => {
  const script = ["--import", "tsx", "src/scripts/legacy-import.ts"];
  const env = (extra: Record<string, string>) => ({
    ...process.env,
    NODE_ENV: "test",
    DATA_DIR: folder,
    ...(t.db.url ? { DATABASE_URL: t.db.url } : {}),
    ...extra,
  });

  it("refuses unknown flags and a missing source with usage, writing nothing", async () => {
    for (const args of [
      ["--csv", "x.csv", "--attribute", "tokens", "--aplly"],
      ["--attribute", "tokens"],
    ]) {
      const failed = await run(process.execPath, [...script, ...args], {
        cwd: projectRoot,
        env: env({}),
      }).catch((e) => e);
      expect(failed.code).toBe(2);
      expect(failed.stderr).toMatch(/usage: npm run legacy:import/);
    }
  });

  it.skipIf(Boolean(serverUrl))(
    "refuses clearly while a server holds the embedded database",
    async () => {
      const dataDir = await mkdtemp(join(tmpdir(), "tl-legacy-held-"));
      const server = await startServerProcess({ DATA_DIR: dataDir });
      try {
        const { path } = await exportFile();
        const args = [...script, "--csv", path, "--attribute", "tokens", "--apply"];
        const failed = await run(process.execPath, args, {
          cwd: projectRoot,
          env: env({ DATA_DIR: dataDir }),
        }).catch((e) => e);
        expect(failed.code).toBe(2);
        expect(failed.stderr).toContain(`held by the server at ${server.url}`);
        expect((await fetch(`${server.url}/health`)).status).toBe(200);
      } finally {
        await server.stop();
      }
    },
    120_000,
  );

  it.skipIf(!serverUrl)(
    "a run killed in the middle resumes where it stopped (PostgreSQL)",
    async () => {
      const path = join(folder, "big.csv.gz");
      const prefix = `big-${randomUUID().slice(0, 8)}`;
      const rows = Array.from({ length: 30_000 }, (_, i) => `${prefix}-${i};"{""tokens"":""7""}"`);
      await writeFile(path, gzipSync(`app_user_id;custom_attributes\n${rows.join("\n")}\n`));
      const child = spawn(process.execPath, [...script, "--csv", path, "--attribute", "tokens", "--apply"], {
        cwd: projectRoot,
        env: env({}),
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stderr = "";
      child.stderr?.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
        if (stderr.includes("progress:")) child.kill("SIGKILL");
      });
      await once(child, "exit");
      // A COMMIT the killed process had already sent still completes on the server after the process
      // is gone: count once two reads 300 ms apart agree (counting at once failed a full run here: 10,256 counted, 10,372 imported).
      const imported = async () => {
        const [row] = await queryRows<{ n: number }>(
          t.db.handle.db,
          sql`SELECT count(*)::int AS n FROM token_transactions WHERE kind = 'LEGACY_IMPORT' AND user_id LIKE ${`${prefix}-%`}`,
        );
        return row?.n ?? 0;
      };
      let partial = await imported();
      for (;;) {
        await sleep(300);
        const now = await imported();
        if (now === partial) break;
        partial = now;
      }
      const resumed = await run(
        process.execPath,
        [...script, "--csv", path, "--attribute", "tokens", "--apply"],
        {
          cwd: projectRoot,
          env: env({}),
          maxBuffer: 10 * 1024 * 1024,
        },
      );
      expect(resumed.stdout).toContain(`already imported:    ${partial}`);
      const [total] = await queryRows<{ n: number; tokens: number }>(
        t.db.handle.db,
        sql`SELECT count(*)::int AS n, sum(amount)::int AS tokens FROM token_transactions
           WHERE kind = 'LEGACY_IMPORT' AND user_id LIKE ${`${prefix}-%`}`,
      );
      expect(total).toEqual({ n: 30_000, tokens: 210_000 });
    },
    120_000,
  );
});
