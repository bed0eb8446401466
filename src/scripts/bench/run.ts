import type { ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import autocannon from "autocannon";
import pino from "pino";
import postgres from "postgres";
import { signDevToken } from "../../auth/jwt.js";
import { openDatabase } from "../../db/client.js";
import { migrate } from "../../db/migrate.js";
import { createLedgerService } from "../../modules/ledger/ledger.service.js";
import { subscribers } from "./live.js";
import { startProcess, stopProcess } from "./processes.js";

/**
 * `npm run bench`: throughput and latency against real PostgreSQL, each server in a process of its
 * own and the load from this one. Not a test: it prints figures; the goals are judged by reading them.
 *
 *   BENCH_DATABASE_URL  admin URL (default postgres://postgres@127.0.0.1:5432/postgres); a
 *                       throwaway database is created there and dropped at the end
 *   BENCH_SECONDS       seconds per HTTP measurement (default 10)
 *   BENCH_SUBSCRIBERS   comma list of subscriber counts (default 1000,10000)
 *   BENCH_REDIS_URL     run the server with REDIS_URL (rate-limit counters in Redis, not PostgreSQL)
 */
const adminUrl = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const subscriberCounts = (process.env.BENCH_SUBSCRIBERS ?? "1000,10000")
  .split(",")
  .filter(Boolean)
  .map(Number);
const CONNECTIONS = 32;
const USERS = 10_000;
const JWT_SECRET = "bench-secret-bench-secret-bench-secret-0123";
const WEBHOOK_SECRET = "bench-webhook-secret-0123456789";

interface Result {
  readonly name: string;
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly errors: number;
}
const results: Result[] = [];

function report(result: Result): void {
  results.push(result);
  console.log(
    `${result.name.padEnd(44)} ${result.rps.toFixed(0).padStart(7)} req/s   p50 ${result.p50.toFixed(2).padStart(6)} ms   p99 ${result.p99.toFixed(2).padStart(7)} ms   errors ${result.errors}`,
  );
}

/** autocannon for `seconds`, after a short warm-up, with a request body made per request. */
async function load(
  name: string,
  url: string,
  makeRequest: (i: number) => { body: string; headers: Record<string, string> },
  check: (status: number, body: string) => boolean,
): Promise<void> {
  let counter = 0;
  let wrong = 0;
  const options = (duration: number): autocannon.Options => ({
    url,
    connections: CONNECTIONS,
    duration,
    method: "POST",
    requests: [
      {
        setupRequest: (request) => {
          const made = makeRequest(counter++);
          return {
            ...request,
            method: "POST",
            body: made.body,
            headers: { "content-type": "application/json", ...made.headers },
          };
        },
        onResponse: (status, body) => {
          if (!check(status, body)) wrong += 1;
        },
      },
    ],
  });
  await autocannon(options(2));
  wrong = 0;
  const result = await autocannon(options(seconds));
  report({
    name,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: wrong + result.errors + result.non2xx,
  });
}

const spendBody = (i: number) =>
  JSON.stringify({
    query:
      "mutation Spend($input: SpendTokensInput!) { spendTokens(input: $input) { success newBalance errorCode } }",
    variables: { input: { amount: 1, description: `bench ${i}` } },
  });

/** A throwaway database on the admin URL, migrated and seeded with USERS funded users. */
async function createBenchDatabase(name: string): Promise<string> {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const dbUrl = url.toString();
  const handle = await openDatabase({ url: dbUrl, poolSize: CONNECTIONS });
  try {
    await migrate(handle);
    // Funded through the ledger's own door, like any balance.
    const ledger = createLedgerService({ database: handle, logger: pino({ level: "silent" }) });
    for (let first = 0; first < USERS; first += CONNECTIONS) {
      const batch = Array.from({ length: Math.min(CONNECTIONS, USERS - first) }, (_, i) => first + i);
      await Promise.all(
        batch.map((i) =>
          ledger.grant({ userId: `bench-user-${i}`, amount: 1_000_000_000, reason: "bench seed" }, "bench"),
        ),
      );
    }
  } finally {
    await handle.close();
  }
  return dbUrl;
}

function appEnvironment(dbUrl: string): Record<string, string> {
  return {
    NODE_ENV: "production",
    PORT: "0",
    HOST: "127.0.0.1",
    DATABASE_URL: dbUrl,
    DATABASE_POOL_SIZE: String(CONNECTIONS),
    // The one-user run spends far more than a person would; the limiter still counts every spend.
    RATE_LIMIT_SPEND_PER_MINUTE: "100000000",
    ...(process.env.BENCH_REDIS_URL ? { REDIS_URL: process.env.BENCH_REDIS_URL } : {}),
    JWT_SECRET,
    REVENUECAT_WEBHOOK_SECRET: WEBHOOK_SECRET,
    LOG_LEVEL: "info",
  };
}

const purchaseBody = (i: number) =>
  JSON.stringify({
    api_version: "1.0",
    event: {
      id: randomUUID(),
      type: "NON_RENEWING_PURCHASE",
      app_user_id: `bench-buyer-${i % USERS}`,
      aliases: [],
      original_app_user_id: `bench-buyer-${i % USERS}`,
      product_id: "token_pack_small",
      transaction_id: `bench-${randomUUID()}`,
      store: "APP_STORE",
      environment: "PRODUCTION",
      price: 0.99,
      currency: "USD",
      event_timestamp_ms: Date.now(),
    },
  });

async function helloWorld(children: ChildProcess[]): Promise<void> {
  const hello = await startProcess(["src/scripts/bench/hello-server.ts"], {});
  children.push(hello.child);
  const body = (i: number) =>
    JSON.stringify({ query: "mutation H($n: String!) { hello(name: $n) }", variables: { n: `n${i}` } });
  await load(
    "(c) yoga hello-world mutation",
    `http://127.0.0.1:${hello.port}/graphql`,
    (i) => ({ body: body(i), headers: {} }),
    (status) => status === 200,
  );
  await stopProcess(hello.child);
}

async function tokenLedger(children: ChildProcess[], dbUrl: string, tokens: string[]): Promise<void> {
  const app = await startProcess(["src/main.ts"], appEnvironment(dbUrl));
  children.push(app.child);
  const base = `http://127.0.0.1:${app.port}`;
  const spent = (status: number, body: string) => status === 200 && body.includes('"success":true');
  const spender = (token: (i: number) => string) => (i: number) => ({
    body: spendBody(i),
    headers: { authorization: `Bearer ${token(i)}` },
  });
  await load(
    "(a) spendTokens, 10,000 users",
    `${base}/graphql`,
    spender((i) => tokens[i % USERS] as string),
    spent,
  );
  await load(
    "(b) spendTokens, one user",
    `${base}/graphql`,
    spender(() => tokens[0] as string),
    spent,
  );
  await load(
    "(w) RevenueCat deliveries, all distinct",
    `${base}/api/v1/tokens/webhook/revenuecat`,
    (i) => ({ body: purchaseBody(i), headers: { authorization: `Bearer ${WEBHOOK_SECRET}` } }),
    (status, body) => status === 200 && body.includes('"credited"'),
  );
  await stopProcess(app.child);
}

function printRatios(): void {
  const rps = (prefix: string) => results.find((r) => r.name.startsWith(prefix))?.rps ?? Number.NaN;
  const [a, b, c, w] = ["(a)", "(b)", "(c)", "(w)"].map(rps) as [number, number, number, number];
  console.log(
    `\nratios: a/c = ${(a / c).toFixed(2)} (goal >= 0.9)   b/a = ${(b / a).toFixed(2)} (goal >= 0.5)   webhook/c = ${(w / c).toFixed(2)} (goal >= 0.9)\n`,
  );
}

async function main(): Promise<void> {
  const name = `tl_bench_${Date.now()}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const children: ChildProcess[] = [];
  try {
    const dbUrl = await createBenchDatabase(name);
    const tokens = await Promise.all(
      Array.from({ length: USERS }, (_, i) =>
        signDevToken({ secret: JWT_SECRET, userId: `bench-user-${i}`, expiresIn: "2h" }),
      ),
    );
    console.log(
      `token-ledger benchmark: ${CONNECTIONS} connections, ${seconds} s per HTTP run, PostgreSQL at ${new URL(adminUrl).host}\n`,
    );
    await helloWorld(children);
    await tokenLedger(children, dbUrl, tokens);
    printRatios();
    // Each subscriber run gets a fresh server, so its memory growth is the subscribers' alone.
    for (const count of subscriberCounts) {
      const live = await startProcess(["src/main.ts"], appEnvironment(dbUrl));
      children.push(live.child);
      await subscribers(`http://127.0.0.1:${live.port}`, count, JWT_SECRET);
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
