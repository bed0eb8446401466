import type { Logger } from "pino";
import type { Database } from "../../db/client.js";
import { type LedgerFootprint, ledgerFootprint } from "../ledger/ledger.queries.js";
import { deleteCountersExpiredBefore, deleteCountersOfUser } from "../limits/rate-limit-retention.js";
import {
  reduceBodiesOfUser,
  reduceBodiesReceivedBefore,
  unreducedBodiesOfUser,
} from "../purchases/webhook-retention.js";

/**
 * Personal data kept outside the ledger, and how long: stored webhook bodies are reduced to the
 * fields the service acts on after `webhookBodyDays`, expired rate-limit counters are deleted after
 * `rateLimitHours`, and an erasure does both for one user at once. The ledger itself is never
 * rewritten: docs/operations.md says why, and what an erasure means with it.
 */
export interface RetentionConfig {
  readonly webhookBodyDays: number;
  readonly rateLimitHours: number;
}

export interface PurgeSummary {
  readonly webhookBodiesReduced: number;
  readonly rateLimitCountersDeleted: number;
}

export interface ErasureSummary {
  readonly userId: string;
  readonly dryRun: boolean;
  /** Stored webhook bodies concerning the user that were (or, in a dry run, would be) reduced. */
  readonly webhookBodiesReduced: number;
  readonly rateLimitCountersDeleted: number;
  /** Kept as it is: the accounts. */
  readonly ledger: LedgerFootprint;
}

export interface RetentionService {
  /** Applies the retention periods once. */
  purge(now?: Date): Promise<PurgeSummary>;
  /** Removes what is kept of one user outside the ledger; a dry run only counts. */
  eraseUser(userId: string, options?: { dryRun?: boolean }): Promise<ErasureSummary>;
}

const HOUR_MS = 3_600_000;

export function createRetentionService(deps: { db: Database; config: RetentionConfig }): RetentionService {
  const { db, config } = deps;
  return {
    async purge(now = new Date()) {
      const bodiesBefore = new Date(now.getTime() - config.webhookBodyDays * 24 * HOUR_MS);
      const countersBefore = new Date(now.getTime() - config.rateLimitHours * HOUR_MS);
      return {
        webhookBodiesReduced: await reduceBodiesReceivedBefore(db, bodiesBefore, now),
        rateLimitCountersDeleted: await deleteCountersExpiredBefore(db, countersBefore),
      };
    },
    async eraseUser(userId, options = {}) {
      const dryRun = options.dryRun === true;
      const webhookBodiesReduced = dryRun
        ? await unreducedBodiesOfUser(db, userId)
        : await reduceBodiesOfUser(db, userId);
      const rateLimitCountersDeleted = dryRun ? 0 : await deleteCountersOfUser(db, userId);
      return {
        userId,
        dryRun,
        webhookBodiesReduced,
        rateLimitCountersDeleted,
        ledger: await ledgerFootprint(db, userId),
      };
    },
  };
}

export interface PurgeSchedule {
  start(): void;
  stop(): Promise<void>;
}

/**
 * Runs the purge in a running server: once shortly after start, then every `intervalMinutes` (0: never).
 * Every instance may run it; two at once reduce each body once. A failure is logged and tried again
 * at the next run.
 */
export function createPurgeSchedule(deps: {
  retention: RetentionService;
  intervalMinutes: number;
  logger: Logger;
  firstRunMs?: number;
}): PurgeSchedule {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;
  const run = () => {
    running = deps.retention.purge().then(
      (summary) => {
        if (summary.webhookBodiesReduced + summary.rateLimitCountersDeleted > 0)
          deps.logger.info(summary, "purge: personal data past its retention removed");
      },
      (error: unknown) =>
        deps.logger.warn({ err: error }, "purge failed; it runs again at the next interval"),
    );
    return running;
  };
  const schedule = (ms: number) => {
    if (stopped) return;
    timer = setTimeout(() => void run().then(() => schedule(deps.intervalMinutes * 60_000)), ms);
    timer.unref();
  };
  return {
    start() {
      if (deps.intervalMinutes > 0) schedule(deps.firstRunMs ?? 5_000);
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
