import pino from "pino";
import type { DatabaseHandle } from "../../db/client.js";
import { seedCredits } from "../../modules/ledger/ledger.seed.js";
import { createLedgerService, type LedgerService } from "../../modules/ledger/ledger.service.js";
import { seedLotUsers, withBenchDatabase } from "./ledger-bench.js";
import { median } from "./stats.js";

/**
 * `npm run bench:lots`: the ledger's spend throughput with 1, 3 and 10 live lots per user, and a sweep
 * of BENCH_DUE_LOTS (default 10,000) lots due in the same minute while spends go on. In one process,
 * through the ledger service and its group commit (BENCH_CONCURRENCY callers, default 32), on a
 * throwaway PostgreSQL database; no HTTP, so the figures are the money function's and the writer's.
 * The spend part runs unchanged on a commit without lots (the lot fields are then ignored), which is
 * how the figures before and after are compared. Not a test: it prints figures.
 *
 *   BENCH_DATABASE_URL  admin URL (default postgres://postgres@127.0.0.1:5432/postgres)
 *   BENCH_SECONDS       seconds per measured run (default 8); BENCH_ROUNDS rounds (default 3)
 *   BENCH_LOTS          comma list of live lots per user (default 1,3,10)
 *   BENCH_DUE_LOTS      lots due in the same minute for the sweep run (0 skips it)
 */
const seconds = Number(process.env.BENCH_SECONDS ?? 8);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const lotCounts = (process.env.BENCH_LOTS ?? "1,3,10").split(",").filter(Boolean).map(Number);
const dueLots = Number(process.env.BENCH_DUE_LOTS ?? 10_000);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 32);

/** The benchmark database's CPU reading (BenchDatabase.cpu), once it exists. */
let cpuOf: () => Promise<{ node: number; db: number }> = async () => ({ node: 0, db: 0 });

interface Run {
  rate: number;
  nodeMs: number;
  dbMs: number;
}

async function measure(ledger: LedgerService, users: string[], ms: number): Promise<Run> {
  const before = await cpuOf();
  const started = performance.now();
  const count = (await spendFor(ledger, users, ms)) * ((performance.now() - started) / 1000);
  const after = await cpuOf();
  return {
    rate: count / ((performance.now() - started) / 1000),
    nodeMs: ((after.node - before.node) * 1000) / count,
    dbMs: ((after.db - before.db) * 1000) / count,
  };
}

/** Spends of 1 by `concurrency` callers over `users` for `ms`; spends per second. */
async function spendFor(ledger: LedgerService, users: string[], ms: number): Promise<number> {
  const until = performance.now() + ms;
  let done = 0;
  let i = 0;
  const worker = async () => {
    while (performance.now() < until) {
      i += 7919;
      const userId = users[i % users.length] as string;
      await ledger.spend(userId, { amount: 1, description: "bench" });
      done += 1;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return done / ((performance.now() - started) / 1000);
}

async function sweepRun(handle: DatabaseHandle, ledger: LedgerService, users: string[]): Promise<void> {
  // Loaded here: a commit without lots has no sweeper, and runs the spend part only.
  const { createExpirySweeper } = await import("../../modules/ledger/ledger.sweeper.js");
  const sweeper = createExpirySweeper({
    database: handle,
    ledger,
    intervalMs: 0,
    logger: pino({ level: "silent" }),
  });
  const due = Array.from({ length: dueLots }, (_, i) => `due-${i}`);
  const dueAt = Date.now() + 40_000;
  const seeded = performance.now();
  await seedCredits(
    handle,
    due.map((userId, i) => ({
      userId,
      delta: 500,
      kind: "PURCHASE",
      description: "bench due period",
      externalRef: `${userId}:due`,
      // All within one minute's last seconds.
      lot: { source: "period", ref: `${userId}:due`, expiresAt: new Date(dueAt + (i % 10) * 100) },
    })),
  );
  console.log(`seeded ${dueLots} lots in ${((performance.now() - seeded) / 1000).toFixed(1)} s`);
  // Autovacuum would otherwise analyze the seeded tables while the spends before the sweep run.
  await handle.query("VACUUM ANALYZE", []);
  // Spends before the lots fall due, in 1 s windows like those during the sweep (the first one is
  // left out: autovacuum and the seeding's checkpoint may still run).
  const windows: number[] = [];
  while (Date.now() < dueAt + 1500 || windows.length < 4) windows.push(await spendFor(ledger, users, 1000));
  const before = median(windows.slice(1));
  let sweepDone = false;
  const spending = (async () => {
    const rates: number[] = [];
    while (!sweepDone) rates.push(await spendFor(ledger, users, 1000));
    return rates;
  })();
  const started = performance.now();
  let expired = 0;
  for (;;) {
    const run = await sweeper.runOnce();
    expired += run.tokens;
    if (run.users === 0) break;
  }
  const sweepMs = performance.now() - started;
  sweepDone = true;
  const during = median(await spending);
  console.log(
    `sweep of ${dueLots} due lots: ${(sweepMs / 1000).toFixed(1)} s (${expired} tokens expired); spends ${before.toFixed(0)}/s before, ${during.toFixed(0)}/s during (medians of 1 s windows: ${(100 * (1 - during / before)).toFixed(0)}% slower)`,
  );
}

await withBenchDatabase("lots", 8, async ({ handle, cpu }) => {
  const ledger = createLedgerService({ database: handle, logger: pino({ level: "silent" }) });
  cpuOf = cpu;
  const groups = new Map<number, string[]>();
  for (const lots of lotCounts) groups.set(lots, await seedLotUsers(handle, `lots${lots}`, lots));
  await spendFor(ledger, groups.get(lotCounts[0] ?? 1) ?? [], 2000); // warm-up
  const runs = new Map<number, Run[]>(lotCounts.map((lots) => [lots, []]));
  for (let round = 0; round < rounds; round += 1) {
    for (const lots of lotCounts) {
      runs.get(lots)?.push(await measure(ledger, groups.get(lots) ?? [], seconds * 1000));
    }
  }
  for (const lots of lotCounts) {
    const all = runs.get(lots) ?? [];
    const rates = all.map((run) => run.rate);
    console.log(
      `spends, ${lots} live lot(s) per user: ${median(rates).toFixed(0)}/s (rounds: ${rates.map((r) => r.toFixed(0)).join(", ")}); CPU per spend: node ${median(all.map((run) => run.nodeMs)).toFixed(3)} ms, PostgreSQL ${median(all.map((run) => run.dbMs)).toFixed(3)} ms`,
    );
  }
  if (dueLots > 0) await sweepRun(handle, ledger, groups.get(lotCounts[0] ?? 1) ?? []);
});
