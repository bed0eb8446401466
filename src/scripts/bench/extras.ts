import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { signDevToken } from "../../auth/jwt.js";
import type { DatabaseHandle } from "../../db/client.js";
import { createLedgerService } from "../../modules/ledger/ledger.service.js";
import { startProcess, stopProcess } from "./processes.js";
import { percentile } from "./stats.js";

/** The embedded database's cold start: a new data directory, from spawning the server to /health. */
export async function coldStart(env: Record<string, string>, tries = 3): Promise<void> {
  const times: number[] = [];
  for (let i = 0; i < tries; i += 1) {
    const dataDir = await mkdtemp(join(tmpdir(), "tl-bench-cold-"));
    const started = performance.now();
    const { child, port } = await startProcess(["src/main.ts"], { ...env, DATA_DIR: dataDir });
    for (;;) {
      const ok = await fetch(`http://127.0.0.1:${port}/health`).then(
        (response) => response.ok,
        () => false,
      );
      if (ok) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    times.push(performance.now() - started);
    await stopProcess(child);
  }
  const shown = times.map((ms) => `${(ms / 1000).toFixed(2)} s`).join(", ");
  console.log(`\nPGlite cold start (new data directory to /health, as npm start runs it): ${shown}`);
}

const PAGE =
  "query P($after: String) { transactions(first: 20, after: $after) { edges { cursor node { amount } } } }";
const OLDEST = "{ transactions(last: 21) { edges { cursor } } }";

/**
 * A `transactions` page near the oldest of `entries` entries against the first page: keyset paging
 * on the entry id should make both equally quick. The entries are written through the ledger.
 */
export async function deepPage(
  database: DatabaseHandle,
  env: Record<string, string>,
  entries: number,
  secret: string,
): Promise<void> {
  const userId = `bench-deep-${Date.now()}`;
  const ledger = createLedgerService({ database, logger: pino({ level: "silent" }) });
  const started = performance.now();
  for (let written = 0; written < entries; written += 2048) {
    const batch = Array.from({ length: Math.min(2048, entries - written) }, () =>
      ledger.grant({ userId, amount: 1, reason: "deep" }, "bench"),
    );
    await Promise.all(batch);
  }
  const seeded = (performance.now() - started) / 1000;
  console.log(`\n${entries} entries for one user written through the ledger in ${seeded.toFixed(1)} s`);
  const { child, port } = await startProcess(["src/main.ts"], env);
  try {
    const token = await signDevToken({ secret, userId, expiresIn: "1h" });
    const ask = async (query: string, variables: Record<string, unknown> = {}) => {
      const response = await fetch(`http://127.0.0.1:${port}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify({ query, variables }),
      });
      return (await response.json()) as { data: { transactions: { edges: { cursor: string }[] } } };
    };
    const oldest = await ask(OLDEST);
    const nearOldest = oldest.data.transactions.edges[0]?.cursor;
    const time = async (after: string | undefined) => {
      const samples: number[] = [];
      for (let i = 0; i < 300; i += 1) {
        const t0 = performance.now();
        const page = await ask(PAGE, { after });
        if (page.data.transactions.edges.length === 0) throw new Error("empty page");
        samples.push(performance.now() - t0);
      }
      return samples.slice(50);
    };
    const first = await time(undefined);
    const deep = await time(nearOldest);
    const p50 = (list: number[]) => percentile(list, 50);
    console.log(
      `transactions page, 20 entries: first page p50 ${p50(first)} ms (p99 ${percentile(first, 99)}), ` +
        `near the oldest p50 ${p50(deep)} ms (p99 ${percentile(deep, 99)}): ${(p50(deep) / p50(first)).toFixed(2)} x`,
    );
  } finally {
    await stopProcess(child);
  }
}
