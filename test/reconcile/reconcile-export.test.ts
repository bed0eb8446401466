import { execFile } from "node:child_process";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTransactionExport } from "../../src/modules/reconcile/export-transactions.js";
import { newUserId, useTestApp } from "../helpers/app.js";
import { FakeRevenuecatApi } from "../helpers/fake-revenuecat-api.js";
import { projectRoot } from "../helpers/process.js";
import { deliver, fixture } from "../helpers/revenuecat.js";
import { balanceOf, entriesFor, PRODUCTS, rowCounts, run, transactionId, v2Purchase } from "./helpers.js";

/**
 * Reconciling from a Scheduled Data Export of transactions (a fake file in the documented columns),
 * and the command itself (`npm run reconcile`, as run.mjs runs it): report lines, exit codes.
 */
const t = useTestApp();
let folder: string;
beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), "tl-reconcile-"));
});

const HEADER =
  "rc_original_app_user_id,rc_last_seen_app_user_id_alias,store,store_transaction_id,original_store_transaction_id," +
  "product_identifier,is_auto_renewable,is_sandbox,start_time,end_time,refunded_at,renewal_number,ownership_type,updated_at,price_in_usd";

interface Row {
  user: string;
  txn: string;
  product?: string;
  store?: string;
  sandbox?: boolean;
  refundedAt?: string;
  updatedAt?: string;
  original?: string;
}

function csvLine(row: Row): string {
  const start = "2026-11-30 10:00:00";
  return [
    row.original ?? row.user,
    row.user,
    row.store ?? "app_store",
    row.txn,
    row.txn,
    row.product ?? "token_pack_small",
    "false",
    row.sandbox ? "true" : "false",
    start,
    "",
    row.refundedAt ?? "",
    "1",
    "PURCHASED",
    row.updatedAt ?? "2026-11-30 10:00:05",
    "0.99",
  ].join(",");
}

async function exportFile(lines: string[], gzipped: boolean): Promise<string> {
  const path = join(folder, `transactions_${transactionId()}.csv${gzipped ? ".gz" : ""}`);
  const text = `${[HEADER, ...lines].join("\n")}\n`;
  await writeFile(path, gzipped ? gzipSync(text) : text);
  return path;
}

/** A purchase credited by its real webhook. */
async function creditedByWebhook(userId: string, txn: string): Promise<void> {
  const body = fixture("NON_RENEWING_PURCHASE__rc-docs", {
    app_user_id: userId,
    aliases: [userId],
    transaction_id: txn,
    original_transaction_id: txn,
    product_id: "token_pack_small",
  });
  expect((await deliver(t.url, body)).body.outcome).toBe("credited");
}

describe("reconcile from a Scheduled Data Export", () => {
  it("judges each transaction by its newest line, gzipped or plain; a broken line is could_not_be_read", async () => {
    const missing = newUserId("ex-missing");
    const credited = newUserId("ex-credited");
    const refunded = newUserId("ex-refunded");
    const [txnMissing, txnCredited, txnRefunded] = [transactionId(), transactionId(), transactionId()];
    await creditedByWebhook(credited, txnCredited);
    await creditedByWebhook(refunded, txnRefunded);
    const lines = [
      // An anonymous original id: the non-anonymous alias is our user.
      csvLine({ user: missing, original: "$RCAnonymousID:0a1b2c", txn: txnMissing }),
      csvLine({ user: credited, txn: txnCredited }),
      csvLine({
        user: refunded,
        txn: txnRefunded,
        refundedAt: "2026-12-01 08:00:00",
        updatedAt: "2026-12-01 08:00:01",
      }),
      // An older version of the refunded transaction, later in the file: the newest wins.
      csvLine({ user: refunded, txn: txnRefunded }),
      csvLine({ user: newUserId("ex-new"), txn: transactionId(), product: "token_pack_brand_new" }),
      csvLine({ user: newUserId("ex-sandbox"), txn: transactionId(), sandbox: true }),
      csvLine({ user: newUserId("ex-promo"), txn: transactionId(), store: "promotional" }),
      ",,,,,,,,,,,,,,",
    ];
    const before = await rowCounts(t);
    for (const gzipped of [true, false]) {
      const path = await exportFile(lines, gzipped);
      const found = await run(t, readTransactionExport(path), { environments: ["PRODUCTION"] });
      expect(found.counts).toEqual({
        missing_credit: 1,
        already_credited: 1,
        refunded_not_clawed_back: 1,
        unknown_product: 1,
        sandbox: 1,
        not_creditable: 1,
        could_not_be_read: 1,
      });
      expect(found.items.find((item) => item.outcome === "missing_credit")).toMatchObject({
        userId: missing,
        storeRef: `APP_STORE:${txnMissing}`,
        tokens: 100,
      });
    }
    expect(await balanceOf(t, missing)).toBe(0);
    expect(await rowCounts(t)).toEqual(before);

    const path = await exportFile(lines, true);
    const applied = await run(t, readTransactionExport(path), {
      apply: true,
      refunds: true,
      environments: ["PRODUCTION"],
    });
    expect(applied.counts).toMatchObject({ credited: 1, clawed_back: 1, already_credited: 1, sandbox: 1 });
    expect(await balanceOf(t, missing)).toBe(100);
    expect(await balanceOf(t, refunded)).toBe(0);
    expect(await entriesFor(t, `APP_STORE:${txnRefunded}`, "REFUND")).toBe(1);
  });
});

describe("npm run reconcile", () => {
  const fake = new FakeRevenuecatApi();
  beforeAll(async () => {
    fake.products.push(...PRODUCTS);
    await fake.start();
  });
  afterAll(() => fake.stop());
  const reconcileCommand = promisify(execFile);
  const command = async (args: string[]) => {
    const env = {
      ...process.env,
      NODE_ENV: "test",
      LOG_LEVEL: "warn",
      DATA_DIR: join(folder, "data"),
      REVENUECAT_API_URL: fake.url,
      REVENUECAT_API_KEY: fake.apiKey,
      REVENUECAT_PROJECT_ID: fake.projectId,
      ...(t.db.url ? { DATABASE_URL: t.db.url } : {}),
    };
    return reconcileCommand(process.execPath, ["src/scripts/run.mjs", "reconcile", ...args], {
      cwd: projectRoot,
      env,
    }).then(
      (done) => ({ code: 0, stdout: done.stdout, stderr: done.stderr }),
      (failed: { code: number; stdout: string; stderr: string }) => failed,
    );
  };

  it("refuses unknown flags, two sources, --refunds without --apply, and a file that is not an export (exit 2)", async () => {
    const plain = join(folder, "not-an-export.csv");
    await writeFile(plain, "app_user_id;custom_attributes\nx;{}\n");
    for (const args of [
      ["--export", plain, "--aplly"],
      ["--export", plain, "--since", "48h"],
      ["--export", plain, "--refunds"],
      ["--export", plain],
    ]) {
      const failed = await command(args);
      expect(failed.code, args.join(" ")).toBe(2);
      expect(failed.stderr).toMatch(/usage: npm run reconcile|not a Scheduled Data Export/);
    }
  }, 120_000);

  it("writes a report, and exits 3 when something could not be read", async () => {
    const userId = newUserId("cli-customer");
    const purchase = v2Purchase(userId);
    fake.customers.set(userId, { attributes: {}, purchases: [purchase] });
    fake.failingCustomers.add("cli-broken");
    const ids = join(folder, "ids.txt");
    await writeFile(ids, `# support tickets\n${userId}\ncli-broken\n`);
    const report = join(folder, "report.jsonl");
    const done = await command(["--customers", ids, "--apply", "--report", report, "--rate", "480"]);
    expect(done.code, done.stderr).toBe(3);
    expect(done.stdout).toMatch(/credited \(missing, now credited\):\s+1/);
    expect(done.stdout).toMatch(/could not be read:\s+1/);
    const lines = (await readFile(report, "utf8"))
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          outcome: "credited",
          userId,
          storeRef: `APP_STORE:${purchase.store_purchase_identifier}`,
        }),
        expect.objectContaining({ outcome: "could_not_be_read", userId: "cli-broken" }),
      ]),
    );
    // Resumed: the credited customer is skipped, the unreadable one read again (it reads now).
    fake.failingCustomers.delete("cli-broken");
    const resumed = await command([
      "--customers",
      ids,
      "--apply",
      "--report",
      report,
      "--resume",
      "--rate",
      "480",
    ]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(/no such customer in RevenueCat:\s+1/);
    expect(resumed.stdout).not.toMatch(/already credited/);
    if (t.db.url) expect(await balanceOf(t, userId)).toBe(100);
  }, 120_000);
});
