import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import postgres from "postgres";
import { root } from "./processes.js";

/**
 * `npm run bench:legacy`: imports a generated Customer Lists export of BENCH_CUSTOMERS customers
 * (default 100,000) into a throwaway PostgreSQL database with `npm run legacy:import -- --apply`, in a
 * process of its own, and reports the time and the progress lines it printed. Not a test.
 */
const adminUrl = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const count = Number(process.env.BENCH_CUSTOMERS ?? 100_000);

/** The export's 51 columns, as the dashboard writes them. */
const COLUMNS =
  "project_id;project_name;app_name;app_id;app_user_id;first_seen_at;last_seen_at;last_seen_app_version;last_seen_ip_country;last_seen_platform;last_seen_platform_version;last_seen_sdk_version;last_seen_locale;price_experiment_id;price_experiment_variant;has_made_sandbox_purchase;latest_entitlement;latest_product;is_rc_promo;first_purchase_at;most_recent_purchase_at;trial_start_at;trial_end_at;most_recent_renewal_at;latest_expiration_at;subscription_opt_out_at;trial_opt_out_at;total_renewals;total_spent;latest_store;latest_store_country;latest_auto_renew_intent;all_purchased_product_ids;most_recent_billing_issues_at;latest_offer;latest_offer_type;latest_purchased_offering;latest_ownership_type;email;phone_number;media_source;campaign;ad_group;ad;keyword;creative;idfa;idfv;gps_ad_id;custom_attributes;currency";

/** A gzipped export: mostly plain balances, some with updated_at_ms, a few bad or suspicious ones. */
function generateExport(customers: number): Buffer {
  const columns = COLUMNS.split(";");
  const lines = [COLUMNS];
  for (let i = 0; i < customers; i += 1) {
    const tokens = i % 97 === 0 ? '"12.5"' : i % 101 === 0 ? '"250000"' : `"${(i * 7919) % 5000}"`;
    const attributes =
      i % 3 === 0
        ? `{"tokens":{"value":${tokens},"updated_at_ms":1767225600000}}`
        : `{"tokens":${tokens},"theme":"dark; contrast"}`;
    const cells = columns.map((column) => {
      if (column === "app_user_id") return `bench-legacy-${i}`;
      if (column === "custom_attributes") return `"${attributes.replaceAll('"', '""')}"`;
      if (column === "project_name") return '"Hint; Quest"';
      if (column.endsWith("_at")) return "1767225600000";
      return column === "currency" ? "USD" : "";
    });
    lines.push(cells.join(";"));
  }
  return gzipSync(`${lines.join("\n")}\n`);
}

async function main(): Promise<void> {
  const name = `tl_bench_legacy_${Date.now()}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  try {
    const folder = await mkdtemp(join(tmpdir(), "tl-bench-legacy-"));
    const file = join(folder, "customers.csv.gz");
    const generated = generateExport(count);
    await writeFile(file, generated);
    console.log(`generated ${count} customers: ${(generated.length / 1048576).toFixed(1)} MB gzipped`);
    const started = performance.now();
    const child = spawn(
      process.execPath,
      ["--import", "tsx", "src/scripts/legacy-import.ts", "--csv", file, "--attribute", "tokens", "--apply"],
      {
        cwd: root,
        env: { ...process.env, DATABASE_URL: url.toString(), LOG_LEVEL: "silent" },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let last = started;
    let longestGap = 0;
    child.stderr?.on("data", (chunk: Buffer) => {
      for (const line of chunk.toString().split("\n").filter(Boolean)) {
        const now = performance.now();
        longestGap = Math.max(longestGap, now - last);
        last = now;
        console.log(`  [${((now - started) / 1000).toFixed(1)} s] ${line}`);
      }
    });
    let stdout = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    const [code] = (await once(child, "exit")) as [number];
    const seconds = (performance.now() - started) / 1000;
    console.log(stdout.split("\n").slice(0, 12).join("\n"));
    console.log(
      `\nexit ${code}; ${count} customers in ${seconds.toFixed(1)} s (${Math.round(count / seconds)}/s), including process start and migrations; longest gap between progress lines ${(longestGap / 1000).toFixed(1)} s`,
    );
  } finally {
    await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
