import { randomUUID } from "node:crypto";
import pino from "pino";
import { createLedgerService, type LedgerService } from "../../modules/ledger/ledger.service.js";
import { seedLotUsers, withBenchDatabase } from "./ledger-bench.js";
import { median } from "./stats.js";

/**
 * `npm run bench:holds`: reserve+capture pairs per second beside spends per second (issue 19): spends
 * without a key, and spends with one, as the app's client sends every spend. In alternating rounds,
 * through the ledger service and its group commit (BENCH_CONCURRENCY callers, default 32) on a
 * throwaway PostgreSQL database, users with BENCH_LOTS live lots each (default 3: a grant and two
 * periods). A pair is two requests (a reserve, then its capture), so it should cost about two spends.
 * Not a test: it prints figures.
 *
 *   BENCH_DATABASE_URL  admin URL (default postgres://postgres@127.0.0.1:5432/postgres)
 *   BENCH_SECONDS       seconds per measured run (default 8); BENCH_ROUNDS rounds (default 3)
 */
const seconds = Number(process.env.BENCH_SECONDS ?? 8);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const lots = Number(process.env.BENCH_LOTS ?? 3);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 32);

type Work = (ledger: LedgerService, userId: string) => Promise<void>;

const spend: Work = async (ledger, userId) => {
  await ledger.spend(userId, { amount: 1, description: "bench" });
};
const keyedSpend: Work = async (ledger, userId) => {
  await ledger.spend(userId, { amount: 1, description: "bench", idempotencyKey: randomUUID() });
};
const pair: Work = async (ledger, userId) => {
  const hold = await ledger.reserve(userId, { amount: 3, idempotencyKey: randomUUID() });
  if (hold.status !== "reserved") throw new Error(`reserve answered ${hold.status}`);
  const captured = await ledger.capture(hold.hold.id, { amount: 1 }, { userId, admin: false });
  if (captured.status !== "captured") throw new Error(`capture answered ${captured.status}`);
};

let cpuOf: () => Promise<{ node: number; db: number }> = async () => ({ node: 0, db: 0 });

/** `work` by `concurrency` callers over `users` for `ms`: operations per second and CPU per operation. */
async function measure(ledger: LedgerService, users: string[], work: Work, ms: number) {
  const before = await cpuOf();
  const until = performance.now() + ms;
  const started = performance.now();
  let done = 0;
  let i = 0;
  const worker = async () => {
    while (performance.now() < until) {
      i += 7919;
      await work(ledger, users[i % users.length] as string);
      done += 1;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const after = await cpuOf();
  return {
    rate: done / ((performance.now() - started) / 1000),
    nodeMs: ((after.node - before.node) * 1000) / done,
    dbMs: ((after.db - before.db) * 1000) / done,
  };
}

await withBenchDatabase("holds", 8, async ({ handle, cpu }) => {
  const ledger = createLedgerService({ database: handle, logger: pino({ level: "silent" }) });
  cpuOf = cpu;
  const users = await seedLotUsers(handle, "holds", lots);
  await measure(ledger, users, spend, 1500); // warm-up
  await measure(ledger, users, pair, 1500);
  const kinds = [
    { label: "spends", work: spend },
    { label: "spends with a key", work: keyedSpend },
    { label: "reserve+capture pairs", work: pair },
  ];
  const runs = kinds.map(() => [] as Awaited<ReturnType<typeof measure>>[]);
  for (let round = 0; round < rounds; round += 1) {
    for (const [k, { work }] of kinds.entries())
      runs[k]?.push(await measure(ledger, users, work, seconds * 1000));
  }
  const medians = runs.map((all) => ({
    rate: median(all.map((run) => run.rate)),
    dbMs: median(all.map((run) => run.dbMs)),
  }));
  for (const [k, all] of runs.entries()) {
    const rates = all.map((run) => run.rate);
    console.log(
      `${kinds[k]?.label}, ${lots} live lot(s) per user: ${median(rates).toFixed(0)}/s (rounds: ${rates.map((r) => r.toFixed(0)).join(", ")}); CPU per operation: node ${median(all.map((run) => run.nodeMs)).toFixed(3)} ms, PostgreSQL ${median(all.map((run) => run.dbMs)).toFixed(3)} ms`,
    );
  }
  const [plain, keyed, pairs] = medians as [(typeof medians)[0], (typeof medians)[0], (typeof medians)[0]];
  const inSpends = (of: typeof plain) =>
    `${(of.rate / pairs.rate).toFixed(2)} in throughput, ${(pairs.dbMs / of.dbMs).toFixed(2)} in PostgreSQL CPU`;
  console.log(
    `a pair costs, in spends without a key: ${inSpends(plain)}; in spends with a key: ${inSpends(keyed)}`,
  );
});
