import { setTimeout as pause } from "node:timers/promises";
import type { Logger } from "pino";
import type { DatabaseHandle } from "../../db/client.js";
import { type HoldSweepMetrics, sweepDueHolds } from "./ledger.hold-sweep.js";
import type { LedgerService } from "./ledger.service.js";

/**
 * The expiry sweeper: every `intervalMs` (0: never) it finds lots that are due (expires_at has
 * passed, tokens left) through the token_lots_due index and asks the ledger to expire their owners'
 * due lots, `batchSize` lots' owners at a time through the group commit, until none are left. It
 * only makes expiry visible (EXPIRE entries, balanceChanged): the money function never draws a lot
 * at or after its end, and expires a user's due lots whenever it touches the user. Several
 * instances may sweep at once: the second finds the lot already at 0 and writes nothing. Then it
 * ends the holds past their TTL the same way (ledger.hold-sweep.ts).
 */
export interface ExpirySweeper {
  start(): void;
  stop(): Promise<void>;
  /** One sweep: the owners it asked about and the tokens that expired. */
  runOnce(): Promise<SweepSummary>;
}

export interface SweepSummary {
  readonly users: number;
  readonly tokens: number;
  /** Holds ended at their TTL (absent when none). */
  readonly holds?: number;
}

export interface SweepMetrics extends HoldSweepMetrics {
  /** Tokens expired by the sweeper. */
  expired(tokens: number): void;
  /** Seconds since the oldest unswept due lot ended (0 when none), measured at each sweep's start. */
  lag(seconds: number): void;
}

/** At most this many batches per sweep, so one sweep always ends; the next goes on. */
const MAX_ROUNDS = 100;
/** Owners whose expiry is in the group commit's queue at once. */
const SLICE = 32;
/**
 * The share of the time a sweep keeps the database busy: after each slice it pauses for the time the
 * slice took × (1 / DUTY_CYCLE − 1). Monthly renewals bunch (10,000 lots due in one minute), and an
 * unpaced sweep took a third of the spends' throughput while it ran; expiry may lag (the money
 * function never draws a due lot, and reads leave due tokens out), spends should not.
 */
const DUTY_CYCLE = 0.12;

export function createExpirySweeper(deps: {
  database: Pick<DatabaseHandle, "query">;
  ledger: Pick<LedgerService, "expireDue" | "expireHolds">;
  intervalMs: number;
  logger: Logger;
  batchSize?: number;
  metrics?: SweepMetrics;
  firstRunMs?: number;
  /** Overrides DUTY_CYCLE (1: no pauses). */
  dutyCycle?: number;
}): ExpirySweeper {
  const batchSize = deps.batchSize ?? 1_000;
  const pauseFactor = 1 / (deps.dutyCycle ?? DUTY_CYCLE) - 1;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  let stopped = false;

  async function runOnce(): Promise<SweepSummary> {
    const [lag] = await deps.database.query<{ lag: number | string | null }>(
      `SELECT extract(epoch FROM now() - min(expires_at)) AS lag
         FROM token_lots WHERE open AND expires_at <= now()`,
      [],
    );
    deps.metrics?.lag(Math.max(0, Number(lag?.lag ?? 0)));
    let users = 0;
    let tokens = 0;
    for (let round = 0; round < MAX_ROUNDS && !stopped; round += 1) {
      const due = await deps.database.query<{ user_id: string }>(
        `SELECT user_id FROM token_lots WHERE open AND expires_at <= now()
          ORDER BY expires_at LIMIT $1`,
        [batchSize],
      );
      if (due.length === 0) break;
      // A slice at a time, so that spends arriving meanwhile wait behind one slice, not the batch.
      const owners = [...new Set(due.map((row) => row.user_id))];
      for (let at = 0; at < owners.length && !stopped; at += SLICE) {
        const started = performance.now();
        const results = await deps.ledger.expireDue(owners.slice(at, at + SLICE));
        const expired = results.reduce((sum, result) => sum + result.expired, 0);
        users += results.length;
        tokens += expired;
        deps.metrics?.expired(expired);
        if (pauseFactor > 0) await pause((performance.now() - started) * pauseFactor);
      }
      if (due.length < batchSize) break;
    }
    const holds = await sweepDueHolds(deps, batchSize, () => stopped);
    return { users, tokens, ...(holds > 0 ? { holds } : {}) };
  }

  const run = () => {
    running = runOnce().then(
      (summary) => {
        if (summary.tokens > 0 || summary.holds)
          deps.logger.info(summary, "expiry sweep: due lots and holds expired");
      },
      (error: unknown) =>
        deps.logger.warn({ err: error }, "expiry sweep failed; it runs again at the next interval"),
    );
    return running;
  };
  const schedule = (ms: number) => {
    if (stopped) return;
    timer = setTimeout(() => void run().then(() => schedule(deps.intervalMs)), ms);
    timer.unref();
  };
  return {
    runOnce,
    start() {
      if (deps.intervalMs > 0) schedule(deps.firstRunMs ?? Math.min(5_000, deps.intervalMs));
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
