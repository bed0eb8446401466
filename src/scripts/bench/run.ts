import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import postgres from "postgres";
import { signDevToken } from "../../auth/jwt.js";
import { openDatabase } from "../../db/client.js";
import { migrate } from "../../db/migrate.js";
import { percentile } from "./stats.js";

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
const root = fileURLToPath(new URL("../../..", import.meta.url));
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

async function startProcess(
  args: string[],
  env: Record<string, string>,
): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ["--import", "tsx", ...args], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let output = "";
  return new Promise((resolve, reject) => {
    // The data listener stays: it keeps draining stdout so log lines never block the server.
    child.stdout?.on("data", (chunk: Buffer) => {
      if (output === null) return;
      output += chunk.toString();
      const match = /"port":(\d+)/.exec(output);
      if (match) {
        output = null as unknown as string;
        resolve({ child, port: Number(match[1]) });
      }
    });
    child.once("exit", () => reject(new Error(`${args.join(" ")} exited before listening`)));
  });
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill("SIGTERM");
  await once(child, "exit");
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

async function rawSql(url: string): Promise<void> {
  const sql = postgres(url, { max: CONNECTIONS, onnotice: () => {} });
  const latencies: number[] = [];
  const deadline = performance.now() + seconds * 1000;
  let done = 0;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async (_, worker) => {
      for (let i = worker; performance.now() < deadline; i += CONNECTIONS) {
        const userId = `bench-user-${i % USERS}`;
        const started = performance.now();
        // The same statement the ledger service runs for a spend, with its NOTIFY.
        await sql`WITH changed AS (
            UPDATE token_balances SET balance = balance - 1, version = version + 1, updated_at = now()
             WHERE user_id = ${userId} AND balance - 1 >= 0 RETURNING balance, version, updated_at),
          entry AS (INSERT INTO token_transactions (user_id, amount, balance_after, balance_version, kind, description, created_at)
            SELECT ${userId}, -1, changed.balance, changed.version, 'SPEND', 'raw', changed.updated_at FROM changed RETURNING *)
          SELECT entry.id, pg_notify('token_balance_changed', json_build_object('userId', entry.user_id, 'balance',
            entry.balance_after, 'delta', entry.amount, 'version', entry.balance_version, 'entryId', entry.id,
            'at', entry.created_at)::text) FROM entry`;
        latencies.push(performance.now() - started);
        done += 1;
      }
    }),
  );
  await sql.end();
  report({
    name: "(d) raw SQL spend via postgres.js",
    rps: done / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    errors: 0,
  });
}

async function serverMemory(baseUrl: string): Promise<{ rss: number; heap: number }> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const read = (name: string) => Number(new RegExp(`^${name} (\\S+)`, "m").exec(text)?.[1] ?? Number.NaN);
  return { rss: read("process_resident_memory_bytes"), heap: read("nodejs_heap_size_used_bytes") };
}

async function subscribers(baseUrl: string, count: number): Promise<void> {
  const before = await serverMemory(baseUrl);
  const child = spawn(process.execPath, ["--import", "tsx", "src/scripts/bench/subscribers.ts"], {
    cwd: root,
    env: { ...process.env, SERVER_URL: baseUrl, JWT_SECRET, COUNT: String(count), SAMPLES: "300" },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  for await (const line of lines) {
    const message = JSON.parse(line) as Record<string, unknown>;
    if (message.phase === "error") throw new Error(String(message.message));
    if (message.phase === "connected") {
      (global as { gc?: () => void }).gc?.();
      await new Promise((resolve) => setTimeout(resolve, 2000));
      const after = await serverMemory(baseUrl);
      const perRss = (after.rss - before.rss) / count / 1024;
      const perHeap = (after.heap - before.heap) / count / 1024;
      console.log(
        `${String(count).padStart(6)} subscribers held (connected in ${Number(message.seconds).toFixed(1)} s): server RSS +${((after.rss - before.rss) / 1048576).toFixed(1)} MB = ${perRss.toFixed(1)} KB/subscriber, heap +${perHeap.toFixed(1)} KB/subscriber`,
      );
      child.stdin?.write("go\n");
    }
    if (message.phase === "latency") {
      const request = message.requestToEvent as { p50: number; p99: number };
      const response = message.responseToEvent as { p50: number; p99: number };
      console.log(
        `${String(count).padStart(6)} subscribers: spend request -> pushed event p50 ${request.p50} ms, p99 ${request.p99} ms; spend response -> pushed event p50 ${response.p50} ms, p99 ${response.p99} ms (${message.samples} samples)`,
      );
    }
  }
  if (child.exitCode === null) await once(child, "exit");
}

async function main(): Promise<void> {
  const name = `tl_bench_${Date.now()}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const dbUrl = url.toString();
  const children: ChildProcess[] = [];
  try {
    const handle = await openDatabase({ url: dbUrl, poolSize: 4 });
    await migrate(handle);
    await handle.close();
    const seed = postgres(dbUrl, { max: 1, onnotice: () => {} });
    await seed`INSERT INTO token_balances (user_id, balance, version)
      SELECT 'bench-user-' || i, 1000000000, 1 FROM generate_series(0, ${USERS - 1}) AS i`;
    await seed`INSERT INTO token_transactions (user_id, amount, balance_after, balance_version, kind, description)
      SELECT 'bench-user-' || i, 1000000000, 1000000000, 1, 'GRANT', 'bench seed' FROM generate_series(0, ${USERS - 1}) AS i`;
    await seed.end();
    const tokens = await Promise.all(
      Array.from({ length: USERS }, (_, i) =>
        signDevToken({ secret: JWT_SECRET, userId: `bench-user-${i}`, expiresIn: "2h" }),
      ),
    );

    console.log(
      `token-ledger benchmark: ${CONNECTIONS} connections, ${seconds} s per HTTP run, PostgreSQL at ${new URL(adminUrl).host}\n`,
    );
    const hello = await startProcess(["src/scripts/bench/hello-server.ts"], {});
    children.push(hello.child);
    await load(
      "(c) yoga hello-world mutation",
      `http://127.0.0.1:${hello.port}/graphql`,
      (i) => ({
        body: JSON.stringify({
          query: "mutation H($n: String!) { hello(name: $n) }",
          variables: { n: `n${i}` },
        }),
        headers: {},
      }),
      (status) => status === 200,
    );
    await stopProcess(hello.child);

    const appEnv = {
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
    const app = await startProcess(["src/main.ts"], appEnv);
    children.push(app.child);
    const base = `http://127.0.0.1:${app.port}`;
    const spent = (status: number, body: string) => status === 200 && body.includes('"success":true');
    await load(
      "(a) spendTokens, 10,000 users",
      `${base}/graphql`,
      (i) => ({ body: spendBody(i), headers: { authorization: `Bearer ${tokens[i % USERS]}` } }),
      spent,
    );
    await load(
      "(b) spendTokens, one user",
      `${base}/graphql`,
      (i) => ({ body: spendBody(i), headers: { authorization: `Bearer ${tokens[0]}` } }),
      spent,
    );
    await load(
      "(w) RevenueCat deliveries, all distinct",
      `${base}/api/v1/tokens/webhook/revenuecat`,
      (i) => ({
        body: JSON.stringify({
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
        }),
        headers: { authorization: `Bearer ${WEBHOOK_SECRET}` },
      }),
      (status, body) => status === 200 && body.includes('"credited"'),
    );
    await rawSql(dbUrl);

    const rps = (prefix: string) => results.find((r) => r.name.startsWith(prefix))?.rps ?? Number.NaN;
    const [a, b, c, d, w] = [rps("(a)"), rps("(b)"), rps("(c)"), rps("(d)"), rps("(w)")] as [
      number,
      number,
      number,
      number,
      number,
    ];
    console.log(
      `\nratios: a/c = ${(a / c).toFixed(2)} (goal >= 0.9)   b/a = ${(b / a).toFixed(2)} (goal >= 0.5)   webhook/c = ${(w / c).toFixed(2)} (goal >= 0.9)   a/d = ${(a / d).toFixed(2)}\n`,
    );

    await stopProcess(app.child);
    // Each subscriber run gets a fresh server, so its memory growth is the subscribers' alone.
    for (const count of subscriberCounts) {
      const live = await startProcess(["src/main.ts"], appEnv);
      children.push(live.child);
      await subscribers(`http://127.0.0.1:${live.port}`, count);
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
