import type { ChildProcess } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import postgres from "postgres";
import { signDevToken } from "../../auth/jwt.js";
import { type DatabaseHandle, openDatabase } from "../../db/client.js";
import { migrate } from "../../db/migrate.js";
import { createLedgerService } from "../../modules/ledger/ledger.service.js";
import { coldStart, deepPage } from "./extras.js";
import { subscribers } from "./live.js";
import type { Scenario } from "./load.js";
import { cpuSeconds, postgresCpuSeconds, runLoadProcess, startProcess, stopProcess } from "./processes.js";
import { median } from "./stats.js";

/**
 * `npm run bench`: throughput and latency of token-ledger against a graphql-yoga hello-world served
 * the same way, in one run, rounds alternating so that drift hits both. Each server runs in a process
 * of its own and the load comes from another (autocannon), so the figures are the server's alone.
 * Not a test: it prints figures; the goals are judged by reading them.
 *
 *   BENCH_DATABASE_URL  admin URL (default postgres://postgres@127.0.0.1:5432/postgres); a throwaway
 *                       database is created there and dropped at the end
 *   BENCH_SECONDS       seconds per measured run (default 8); BENCH_ROUNDS rounds each (default 3)
 *   BENCH_SCENARIOS     comma list of spend-spread, spend-hot, webhook, balance (default all)
 *   BENCH_PGLITE        0 to skip the embedded database's figures
 *   BENCH_DEEP_ENTRIES  entries for the deep-page run (default 1000000; 0 skips it)
 *   BENCH_SUBSCRIBERS   comma list of subscriber counts (default 1000,10000; empty skips)
 *   BENCH_REDIS_URL     run the server with REDIS_URL (rate-limit counters in Redis)
 *   BENCH_PROFILE       a folder: each measured run of the server is CPU-profiled into it
 */
const adminUrl = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const seconds = Number(process.env.BENCH_SECONDS ?? 8);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const scenarios = (process.env.BENCH_SCENARIOS ?? "spend-spread,spend-hot,webhook,balance").split(
  ",",
) as Scenario[];
const withPglite = process.env.BENCH_PGLITE !== "0";
const deepEntries = Number(process.env.BENCH_DEEP_ENTRIES ?? 1_000_000);
const subscriberCounts = (process.env.BENCH_SUBSCRIBERS ?? "1000,10000")
  .split(",")
  .filter(Boolean)
  .map(Number);
const CONNECTIONS = 32;
const USERS = 10_000;
const JWT_SECRET = "bench-secret-bench-secret-bench-secret-0123";
const WEBHOOK_SECRET = "bench-webhook-secret-0123456789";

interface Server {
  readonly child: ChildProcess;
  readonly url: string;
}

interface Sample {
  rps: number;
  p50: number;
  p99: number;
  cpuMs: number;
  /** PostgreSQL's CPU per request (all its processes), or NaN where the run used no PostgreSQL. */
  dbMs: number;
  wrong: number;
}

function serverEnv(database: { url?: string; dataDir?: string }): Record<string, string> {
  return {
    NODE_ENV: "production",
    PORT: "0",
    HOST: "127.0.0.1",
    ...(database.url ? { DATABASE_URL: database.url, DATABASE_POOL_SIZE: String(CONNECTIONS) } : {}),
    ...(database.dataDir ? { DATA_DIR: database.dataDir } : {}),
    // The hot-user run spends far more than a person would; the limiter still counts every spend.
    RATE_LIMIT_SPEND_PER_MINUTE: "100000000",
    ...(process.env.BENCH_REDIS_URL ? { REDIS_URL: process.env.BENCH_REDIS_URL } : {}),
    JWT_SECRET,
    REVENUECAT_WEBHOOK_SECRET: WEBHOOK_SECRET,
    // Production requires a product map; the webhook run buys token_pack_small.
    PRODUCT_TOKEN_MAP: JSON.stringify({ token_pack_small: 100 }),
    LOG_LEVEL: "info",
  };
}

async function start(args: string[], env: Record<string, string>): Promise<Server> {
  const { child, port } = await startProcess(args, env);
  return { child, url: `http://127.0.0.1:${port}` };
}

/** One measured run: the load generator in its own process, the server's CPU read around it. */
async function measure(server: Server, scenario: Scenario, tokensFile: string): Promise<Sample> {
  const pid = server.child.pid as number;
  const cpuBefore = cpuSeconds(pid);
  const dbBefore = postgresCpuSeconds();
  const result = await runLoadProcess({
    scenario,
    url: server.url,
    seconds,
    connections: CONNECTIONS,
    tokensFile,
    webhookSecret: WEBHOOK_SECRET,
  });
  const requests = Math.max(1, result.requests);
  const cpuMs = ((cpuSeconds(pid) - cpuBefore) * 1000) / requests;
  const dbMs = ((postgresCpuSeconds() - dbBefore) * 1000) / requests;
  return { rps: result.rps, p50: result.p50, p99: result.p99, cpuMs, dbMs, wrong: result.wrong };
}

type Histograms = Map<"ledger" | "webhook", Map<string, number>>;

/** The batch sizes the server's group commits wrote (ledger entries, webhook deliveries), from /metrics. */
async function batchSizes(server: Server): Promise<Histograms> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const histograms: Histograms = new Map([
    ["ledger", new Map()],
    ["webhook", new Map()],
  ]);
  for (const match of text.matchAll(/^token_(ledger|webhook)_batch_size_bucket\{le="([^"]+)"\} (\d+)/gm)) {
    histograms.get(match[1] as "ledger" | "webhook")?.set(match[2] as string, Number(match[3]));
  }
  return histograms;
}

/** The batches written between two readings, per size bucket ("ledger <=8: 120, <=16: 40"). */
function describeBatches(before: Histograms, after: Histograms): string {
  const described: string[] = [];
  for (const [kind, buckets] of after) {
    let previous = 0;
    const parts: string[] = [];
    for (const [le, count] of buckets) {
      const cumulative = count - (before.get(kind)?.get(le) ?? 0);
      if (cumulative - previous > 0) parts.push(`<=${le}: ${cumulative - previous}`);
      previous = cumulative;
    }
    if (parts.length > 0) described.push(`${kind} ${parts.join(", ")}`);
  }
  return described.join("; ");
}

function line(label: string, s: Sample, hello: Sample): string {
  const ratio = s.rps / hello.rps;
  return (
    `${label.padEnd(30)} ${s.rps.toFixed(0).padStart(6)} req/s  ${ratio.toFixed(2).padStart(5)} x hello  ` +
    `p50 ${s.p50.toFixed(1).padStart(5)} ms  p99 ${s.p99.toFixed(1).padStart(6)} ms (hello ${hello.p99.toFixed(1)})  ` +
    `CPU ${s.cpuMs.toFixed(3)} ms/req (hello ${hello.cpuMs.toFixed(3)})  ` +
    (label.startsWith("PostgreSQL") ? `PostgreSQL CPU ${s.dbMs.toFixed(3)} ms/req  ` : "") +
    `wrong ${s.wrong}`
  );
}

/** Rounds alternating hello-world and the scenario; medians of each. */
async function compare(label: string, hello: Server, server: Server, scenario: Scenario, tokensFile: string) {
  const helloSamples: Sample[] = [];
  const samples: Sample[] = [];
  const before = await batchSizes(server);
  for (let round = 0; round < rounds; round += 1) {
    helloSamples.push(await measure(hello, "hello", tokensFile));
    // With BENCH_PROFILE, the server profiles its CPU during the measured load only (profiler-hook.ts).
    if (process.env.BENCH_PROFILE) server.child.kill("SIGUSR2");
    samples.push(await measure(server, scenario, tokensFile));
    if (process.env.BENCH_PROFILE) server.child.kill("SIGUSR2");
  }
  const pick = (list: Sample[]): Sample => ({
    rps: median(list.map((s) => s.rps)),
    p50: median(list.map((s) => s.p50)),
    p99: median(list.map((s) => s.p99)),
    cpuMs: median(list.map((s) => s.cpuMs)),
    dbMs: median(list.map((s) => s.dbMs)),
    wrong: list.reduce((sum, s) => sum + s.wrong, 0),
  });
  console.log(line(label, pick(samples), pick(helloSamples)));
  const batches = describeBatches(before, await batchSizes(server));
  if (batches) console.log(`${"".padEnd(30)} batch sizes: ${batches}`);
}

/** Funds the users through the ledger's own door, and signs one token each. */
async function seed(database: DatabaseHandle): Promise<string> {
  const ledger = createLedgerService({ database, logger: pino({ level: "silent" }) });
  const grants = Array.from({ length: USERS }, (_, i) =>
    ledger.grant({ userId: `bench-user-${i}`, amount: 1_000_000_000, reason: "bench seed" }, "bench"),
  );
  await Promise.all(grants);
  const tokens = await Promise.all(
    Array.from({ length: USERS }, (_, i) =>
      signDevToken({ secret: JWT_SECRET, userId: `bench-user-${i}`, expiresIn: "3h" }),
    ),
  );
  const file = join(await mkdtemp(join(tmpdir(), "tl-bench-")), "tokens.json");
  await writeFile(file, JSON.stringify(tokens));
  return file;
}

/** Verifies every token once, as a real client reuses its token: the cache is warm before measuring. */
async function warm(server: Server, tokensFile: string): Promise<void> {
  const spec = {
    scenario: "balance" as const,
    url: server.url,
    seconds: 0,
    connections: CONNECTIONS,
    tokensFile,
  };
  await runLoadProcess({ ...spec, amount: USERS });
}

async function benchDatabase(
  label: string,
  database: { url?: string; dataDir?: string },
  handle: DatabaseHandle,
  hello: Server,
) {
  const tokensFile = await seed(handle);
  if (database.dataDir) await handle.close();
  const server = await start(["src/main.ts"], serverEnv(database));
  try {
    await warm(server, tokensFile);
    for (const scenario of scenarios)
      await compare(`${label} ${scenario}`, hello, server, scenario, tokensFile);
  } finally {
    await stopProcess(server.child);
  }
}

async function main(): Promise<void> {
  const name = `tl_bench_${Date.now()}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const children: ChildProcess[] = [];
  console.log(
    `token-ledger benchmark: ${CONNECTIONS} connections, ${rounds} rounds of ${seconds} s, alternating with hello-world\n`,
  );
  try {
    const hello = await start(["src/scripts/bench/hello-server.ts"], {});
    children.push(hello.child);
    const pg = await openDatabase({ url: url.toString(), poolSize: CONNECTIONS });
    await migrate(pg);
    await benchDatabase("PostgreSQL", { url: url.toString() }, pg, hello);
    if (withPglite) {
      const dataDir = await mkdtemp(join(tmpdir(), "tl-bench-pglite-"));
      const embedded = await openDatabase({ dataDir });
      await migrate(embedded);
      await benchDatabase("PGlite", { dataDir }, embedded, hello);
      await coldStart(serverEnv({}));
    }
    if (deepEntries > 0) await deepPage(pg, serverEnv({ url: url.toString() }), deepEntries, JWT_SECRET);
    await pg.close();
    for (const count of subscriberCounts) {
      const live = await start(["src/main.ts"], serverEnv({ url: url.toString() }));
      children.push(live.child);
      await subscribers(live.url, count, JWT_SECRET);
      await stopProcess(live.child);
    }
  } finally {
    for (const child of children) await stopProcess(child);
    await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
