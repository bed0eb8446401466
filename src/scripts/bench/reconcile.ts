import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import pino from "pino";
import postgres from "postgres";
import { openDatabase } from "../../db/client.js";
import { migrate } from "../../db/migrate.js";
import { createLedgerService } from "../../modules/ledger/ledger.service.js";
import { createPurchasesService } from "../../modules/purchases/purchases.service.js";
import { revenuecatDeliverySchema } from "../../modules/purchases/revenuecat.event.js";
import { root } from "./processes.js";

/**
 * `npm run bench:reconcile`: BENCH_ROWS (default 100,000) purchases credited in a throwaway
 * PostgreSQL database through the webhook's purchase path, then `npm run reconcile -- --export` of a
 * generated Scheduled Data Export of as many rows in a process of its own: 94 % already credited,
 * 3 % missing, 2 % refunded upstream, 1 % an unknown product. A dry run, then --apply; the times
 * include process start. Not a test.
 */
const adminUrl = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const rows = Number(process.env.BENCH_ROWS ?? 100_000);
const HEADER =
  "rc_original_app_user_id,rc_last_seen_app_user_id_alias,store,store_transaction_id,original_store_transaction_id," +
  "product_identifier,is_auto_renewable,is_sandbox,start_time,end_time,refunded_at,renewal_number,ownership_type,updated_at,price_in_usd";

const user = (i: number) => `bench-reconcile-${i % 20_000}`;
const txn = (i: number) => String(100_000_000_000_000 + i);
type Kind = "credited" | "missing" | "refunded" | "unknown";
const kindOf = (i: number): Kind =>
  i % 100 < 94 ? "credited" : i % 100 < 97 ? "missing" : i % 100 < 99 ? "refunded" : "unknown";

async function seedLedger(url: string): Promise<number> {
  const database = await openDatabase({ url, poolSize: 8 });
  await migrate(database);
  const logger = pino({ level: "silent" });
  const ledger = createLedgerService({ database, logger });
  // Seeded through the webhook's own path, the one way a purchase is credited.
  const config = { productTokenMap: { token_pack_small: 100 }, environments: ["PRODUCTION"] };
  const purchases = createPurchasesService({ database, ledger, logger, config });
  const started = performance.now();
  let credited = 0;
  // The ledger holds as many purchases as the export has rows: those the export lists as credited
  // or refunded, and others it does not list (older than the export's window).
  for (let start = 0; start < rows; start += 500) {
    await Promise.all(
      Array.from({ length: Math.min(500, rows - start) }, (_, k) => start + k).map((i) => {
        const listed = kindOf(i) === "credited" || kindOf(i) === "refunded";
        const [store, transactionId] = listed ? ["APP_STORE", txn(i)] : ["PLAY_STORE", `GPA.bench-${i}`];
        const event = {
          id: `bench-seed-${i}`,
          type: "NON_RENEWING_PURCHASE",
          app_user_id: user(i),
          original_app_user_id: user(i),
          product_id: "token_pack_small",
          store,
          transaction_id: transactionId,
          environment: "PRODUCTION",
          event_timestamp_ms: Date.now(),
        };
        const parsed = revenuecatDeliverySchema.parse({ api_version: "1.0", event }).event;
        return purchases.handleDelivery(JSON.stringify({ api_version: "1.0", event }), parsed);
      }),
    );
    credited = Math.min(rows, start + 500);
    if (credited % 20_000 === 0) console.log(`  seeded ${credited} ledger entries`);
  }
  await database.close();
  console.log(
    `seeded ${credited} purchase entries in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  return credited;
}

function exportFile(): Buffer {
  const lines = [HEADER];
  for (let i = 0; i < rows; i += 1) {
    const kind = kindOf(i);
    const product = kind === "unknown" ? "token_pack_unknown" : "token_pack_small";
    const refunded = kind === "refunded" ? "2026-12-01 08:00:00" : "";
    lines.push(
      `${user(i)},${user(i)},app_store,${txn(i)},${txn(i)},${product},false,false,2026-11-30 10:00:00,,${refunded},1,PURCHASED,2026-12-01 09:00:00,0.99`,
    );
  }
  return gzipSync(`${lines.join("\n")}\n`);
}

async function reconcileRun(url: string, file: string, apply: boolean): Promise<void> {
  const started = performance.now();
  const args = ["src/scripts/run.mjs", "reconcile", "--export", file, ...(apply ? ["--apply"] : [])];
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { ...process.env, DATABASE_URL: url, LOG_LEVEL: "silent" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const at = () => `[${((performance.now() - started) / 1000).toFixed(1)} s]`;
  child.stderr?.on("data", (chunk: Buffer) => {
    for (const line of chunk.toString().split("\n").filter(Boolean)) console.log(`  ${at()} ${line}`);
  });
  let stdout = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  const [code] = (await once(child, "exit")) as [number];
  const seconds = (performance.now() - started) / 1000;
  console.log(stdout.trimEnd());
  console.log(
    `exit ${code}; ${rows} export rows against ${rows} ledger entries, ${apply ? "--apply" : "dry run"}: ${seconds.toFixed(1)} s including process start\n`,
  );
}

async function main(): Promise<void> {
  const name = `tl_bench_reconcile_${Date.now()}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  try {
    await seedLedger(url.toString());
    const folder = await mkdtemp(join(tmpdir(), "tl-bench-reconcile-"));
    const file = join(folder, "transactions.csv.gz");
    const generated = exportFile();
    await writeFile(file, generated);
    console.log(`generated ${rows} export rows: ${(generated.length / 1048576).toFixed(1)} MB gzipped\n`);
    await reconcileRun(url.toString(), file, false);
    await reconcileRun(url.toString(), file, true);
  } finally {
    await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
