import { randomUUID } from "node:crypto";
import { applyBatch } from "../../modules/ledger/ledger.seed.js";
import { seedLotUsers, withBenchDatabase } from "./ledger-bench.js";
import { median } from "./stats.js";

/**
 * `npm run bench:apply`: the money function alone. PostgreSQL CPU per batch of 16 requests of one
 * kind (spends without a key, spends with one, reserves of 3, captures of 1 of those holds), each
 * batch one statement (its own transaction), sent one after another over one connection, whose
 * backend's CPU is read from /proc: no group commit, no Node.js beside it. BENCH_ROUNDS rounds
 * (default 3) of BENCH_BATCHES batches of each kind (default 600), the kinds taking turns by slices
 * of 50, on a throwaway database seeded like `npm run bench:holds` (2,000 users, a grant and two
 * periods each). It is for comparing two versions of the money function: run it against each in
 * turn, several times. Not a test: it prints figures.
 *
 *   BENCH_DATABASE_URL  admin URL (default postgres://postgres@127.0.0.1:5432/postgres)
 */
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const batches = Number(process.env.BENCH_BATCHES ?? 600);
const USERS = 2_000;
const BATCH = 16;
const SLICE = 50;

type Request = Parameters<typeof applyBatch>[1][number];

await withBenchDatabase("apply", 1, async ({ handle, cpu }) => {
  const users = await seedLotUsers(handle, "apply", 3, USERS);
  const apply = (requests: Request[]) => applyBatch(handle, requests);
  let next = 0;
  const someUsers = () =>
    Array.from({ length: BATCH }, () => {
      next = (next + 7919) % USERS;
      return users[next] as string;
    });
  const holds: { userId: string; id: string }[] = [];
  const kinds: {
    label: string;
    batch: () => Request[];
    expect: string;
    answered?: (rows: Awaited<ReturnType<typeof applyBatch>>) => void;
  }[] = [
    {
      label: "spends",
      batch: () => someUsers().map((userId) => ({ userId, delta: -1, kind: "SPEND", description: "bench" })),
      expect: "applied",
    },
    {
      label: "spends with a key",
      batch: () =>
        someUsers().map((userId) => ({
          userId,
          delta: -1,
          kind: "SPEND",
          description: "bench",
          idempotencyKey: randomUUID(),
        })),
      expect: "applied",
    },
    {
      label: "reserves",
      batch: () =>
        someUsers().map((userId) => ({
          userId,
          delta: -3,
          kind: "SPEND",
          description: null,
          idempotencyKey: randomUUID(),
          op: "reserve",
          hold: { ttlSeconds: 600, limit: 16 },
        })),
      expect: "reserved",
      answered: (rows) => {
        for (const row of rows)
          holds.push({ userId: row.user_id, id: String((row.hold_after as { id: number }).id) });
      },
    },
    {
      label: "captures",
      batch: () =>
        holds.splice(0, BATCH).map(({ userId, id }) => ({
          userId,
          delta: -1,
          kind: "SPEND",
          description: null,
          op: "capture",
          hold: { id, overage: "REJECT" },
        })),
      expect: "applied",
    },
  ];
  // Kinds take turns by slices of SLICE batches, so that a machine whose speed drifts (a shared
  // host) slows every kind alike; each round adds up its slices' CPU per kind.
  const ms: number[][] = kinds.map(() => []);
  for (let round = 0; round < rounds; round += 1) {
    const used = kinds.map(() => 0);
    for (let done = 0; done < batches; done += SLICE) {
      for (const [k, kind] of kinds.entries()) {
        const before = (await cpu()).db;
        for (let i = 0; i < SLICE; i += 1) {
          const rows = await apply(kind.batch());
          const refused = rows.find((row) => row.status !== kind.expect);
          if (refused) throw new Error(`${kind.label}: ${refused.status}`);
          kind.answered?.(rows);
        }
        used[k] = (used[k] ?? 0) + (await cpu()).db - before;
      }
    }
    for (const [k, seconds] of used.entries()) ms[k]?.push((seconds * 1000) / batches);
  }
  for (const [k, kind] of kinds.entries())
    console.log(
      `${kind.label}: ${median(ms[k] ?? []).toFixed(2)} ms of PostgreSQL CPU a batch of ${BATCH} (rounds: ${(ms[k] ?? []).map((v) => v.toFixed(2)).join(", ")})`,
    );
  const pairs = (ms[2] ?? []).map((reserve, r) => reserve + (ms[3]?.[r] ?? Number.NaN));
  const inSpends = (k: number) => pairs.map((pair, r) => pair / (ms[k]?.[r] ?? Number.NaN));
  const show = (values: number[]) =>
    `${median(values).toFixed(2)} (rounds: ${values.map((v) => v.toFixed(2)).join(", ")})`;
  console.log(`a pair (a reserve's batch and a capture's): ${show(pairs)} ms`);
  console.log(`a pair in spends without a key: ${show(inSpends(0))}; with a key: ${show(inSpends(1))}`);
});
