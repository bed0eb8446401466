import postgres from "postgres";
import { type DatabaseHandle, openDatabase } from "../../db/client.js";
import { migrate } from "../../db/migrate.js";
import { seedCredits } from "../../modules/ledger/ledger.seed.js";
import { cpuSeconds } from "./processes.js";

// What the ledger's own benchmarks share (bench:lots, bench:holds, bench:apply): a throwaway
// database, users with live lots, the CPU of this process and of that database's backends.

const DAY = 86_400_000;

export interface BenchDatabase {
  readonly handle: DatabaseHandle;
  /**
   * CPU seconds so far of this process and of the PostgreSQL backends serving this database (found
   * in pg_stat_activity, so other databases' work on a shared server is not counted): on a noisy
   * machine CPU per operation moves far less than operations per second.
   */
  cpu(): Promise<{ node: number; db: number }>;
}

/**
 * Runs `work` on a new, migrated PostgreSQL database named `tl_bench_<prefix>_<now>` on the server of
 * BENCH_DATABASE_URL (an admin URL, default postgres://postgres@127.0.0.1:5432/postgres), through a
 * pool of `poolSize` connections, and drops the database after, whatever happens.
 */
export async function withBenchDatabase(
  prefix: string,
  poolSize: number,
  work: (database: BenchDatabase) => Promise<void>,
): Promise<void> {
  const adminUrl = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
  const name = `tl_bench_${prefix}_${Date.now()}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const handle = await openDatabase({ url: url.toString(), poolSize });
  try {
    await migrate(handle);
    await work({
      handle,
      async cpu() {
        const pids = await admin<{ pid: number }[]>`SELECT pid FROM pg_stat_activity WHERE datname = ${name}`;
        const usage = process.cpuUsage();
        return {
          node: (usage.user + usage.system) / 1e6,
          db: pids.reduce((sum, { pid }) => sum + (cpuSeconds(pid) || 0), 0),
        };
      },
    });
  } finally {
    await handle.close();
    await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

/**
 * `count` users named `<prefix>-<i>`, each with `lots` live lots: one non-expiring grant of 1,000,000,
 * the rest periods of 100,000 ending 30, 60... days from now.
 */
export async function seedLotUsers(
  handle: DatabaseHandle,
  prefix: string,
  lots: number,
  count = 2_000,
): Promise<string[]> {
  type Credit = Parameters<typeof seedCredits>[1][number];
  const users = Array.from({ length: count }, (_, i) => `${prefix}-${i}`);
  const now = Date.now();
  await seedCredits(
    handle,
    users.flatMap((userId) => [
      { userId, delta: 1_000_000, kind: "GRANT", description: "bench" } as Credit,
      ...Array.from(
        { length: lots - 1 },
        (_, n): Credit => ({
          userId,
          delta: 100_000,
          kind: "PURCHASE",
          description: "bench period",
          externalRef: `${userId}:p${n}`,
          lot: {
            source: "period",
            ref: `${userId}:p${n}`,
            chain: userId,
            expiresAt: new Date(now + (n + 1) * 30 * DAY),
          },
        }),
      ),
    ]),
  );
  return users;
}
