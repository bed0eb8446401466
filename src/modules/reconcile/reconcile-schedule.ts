import { sql } from "drizzle-orm";
import type { Logger } from "pino";
import { Counter, Gauge, type Registry } from "prom-client";
import type { Config } from "../../config.js";
import { type DatabaseHandle, queryRows } from "../../db/client.js";
import { createRevenuecatApi, type RevenuecatApi } from "../legacy/revenuecat-api.js";
import type { PurchasePolicyConfig } from "../purchases/purchase.policy.js";
import type { PurchasesService } from "../purchases/purchases.service.js";
import { type ReconcileSummary, reconcile } from "./reconcile.service.js";
import { RECONCILE_OUTCOMES } from "./reconcile-outcomes.js";
import { activeUsersSince } from "./reconcile-report.js";
import { readCustomers, readProductMap } from "./v2-customers.js";

/** Who counts as recently active for the sweep: the last day, as the issue and the design ask. */
const WINDOW_MS = 24 * 3_600_000;
/** Younger purchases may still be in RevenueCat's 155 minutes of webhook retries. */
const MARGIN_MS = 3 * 3_600_000;
/** The sweep's requests a minute: under RevenueCat's 480, leaving room for the legacy import. */
const RATE_PER_MINUTE = 300;
/** One sweep at a time across every instance on the database. */
const LOCK_KEY = "token-ledger:reconcile-sweep";

export interface ReconcileSchedule {
  start(): void;
  stop(): Promise<void>;
  /** One sweep now: "done", or "busy" when another instance is sweeping. */
  sweep(): Promise<"done" | "busy">;
}

export function createReconcileMetrics(registry: Registry) {
  const outcomes = new Counter({
    name: "token_reconcile_total",
    help: "Store transactions (and customers) the scheduled reconcile sweep judged, by outcome (docs/reconcile.md).",
    labelNames: ["outcome"] as const,
    registers: [registry],
  });
  for (const outcome of RECONCILE_OUTCOMES) outcomes.inc({ outcome }, 0);
  const lastSuccess = new Gauge({
    name: "token_reconcile_last_success_timestamp_seconds",
    help: "When a scheduled reconcile sweep last finished (Unix seconds); 0 until the first one.",
    registers: [registry],
  });
  return { outcomes, lastSuccess };
}

export interface ReconcileScheduleDeps {
  readonly database: Pick<DatabaseHandle, "db" | "driver">;
  readonly purchases: Pick<PurchasesService, "handleDelivery">;
  readonly policy: PurchasePolicyConfig;
  readonly api: RevenuecatApi;
  readonly intervalMinutes: number;
  readonly apply: boolean;
  readonly logger: Logger;
  readonly metrics: ReturnType<typeof createReconcileMetrics>;
  readonly firstRunMs?: number;
}

/**
 * The service's own sweep (RECONCILE_INTERVAL): the users active in the last day are read from
 * RevenueCat and reconciled, crediting only with RECONCILE_APPLY=true, never taking refunds back
 * (that stays a deliberate `npm run reconcile -- --apply --refunds`).
 */
export function createReconcileSchedule(deps: ReconcileScheduleDeps): ReconcileSchedule {
  const { database, logger, metrics } = deps;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  let stopped = false;
  const work = async () => {
    const users = await activeUsersSince(database.db, new Date(Date.now() - WINDOW_MS));
    const products = await readProductMap(deps.api);
    const summary = await reconcile(
      { db: database.db, purchases: deps.purchases, policy: deps.policy, logger },
      readCustomers(deps.api, products, users),
      {
        apply: deps.apply,
        refunds: false,
        marginMs: MARGIN_MS,
        onItem: (item) => metrics.outcomes.inc({ outcome: item.outcome }),
      },
    );
    metrics.lastSuccess.set(Date.now() / 1000);
    logSummary(logger, users.length, summary);
  };
  const sweep = () => exclusively(database, work);
  const schedule = (ms: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = sweep()
        .then((result) => {
          if (result === "busy") logger.info("reconcile sweep: another instance is sweeping; skipped");
        })
        .catch((error: unknown) =>
          logger.warn({ err: error }, "reconcile sweep failed; it runs again at the next interval"),
        )
        .then(() => schedule(deps.intervalMinutes * 60_000));
    }, ms);
    timer.unref();
  };
  return {
    sweep,
    start() {
      if (deps.intervalMinutes > 0) schedule(deps.firstRunMs ?? 60_000);
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}

/**
 * Runs `work` while holding a transaction-scoped advisory lock, so one instance sweeps at a time;
 * "busy" when another holds it. The lock's transaction only waits (it writes nothing, and the sweep
 * credits on other connections), so it survives PgBouncer's transaction pooling where a session
 * lock would not. The embedded database has one process and one connection: no lock is needed, and
 * holding a transaction there would stall the sweep's own writes.
 */
async function exclusively(
  database: Pick<DatabaseHandle, "db" | "driver">,
  work: () => Promise<void>,
): Promise<"done" | "busy"> {
  if (database.driver === "pglite") {
    await work();
    return "done";
  }
  return database.db.transaction(async (tx) => {
    const [row] = await queryRows<{ locked: boolean }>(
      tx,
      sql`SELECT pg_try_advisory_xact_lock(hashtextextended(${LOCK_KEY}, 0)) AS locked`,
    );
    if (!row?.locked) return "busy";
    await work();
    return "done";
  });
}

function logSummary(logger: Logger, users: number, summary: ReconcileSummary): void {
  const found = Object.fromEntries(Object.entries(summary.counts).filter(([, count]) => count > 0));
  const attention =
    summary.counts.missing_credit + summary.counts.credited + summary.counts.refunded_not_clawed_back;
  const message = `reconcile sweep (${summary.mode}): ${users} users, ${summary.transactions} transactions`;
  if (attention > 0 || summary.counts.could_not_be_read > 0) logger.warn({ outcomes: found }, message);
  else logger.info({ outcomes: found }, message);
}

/** The sweep a server runs, from its configuration; null when RECONCILE_INTERVAL is off. */
export function reconcileScheduleFromConfig(deps: {
  config: Config;
  database: Pick<DatabaseHandle, "db" | "driver">;
  purchases: Pick<PurchasesService, "handleDelivery">;
  registry: Registry;
  logger: Logger;
}): ReconcileSchedule | null {
  const { config } = deps;
  const { key, projectId, url } = config.revenuecatApi;
  if (config.reconcile.intervalMinutes === 0 || !key || !projectId) return null;
  return createReconcileSchedule({
    database: deps.database,
    purchases: deps.purchases,
    policy: config.revenuecat,
    api: createRevenuecatApi({ baseUrl: url, projectId, apiKey: key, ratePerMinute: RATE_PER_MINUTE }),
    intervalMinutes: config.reconcile.intervalMinutes,
    apply: config.reconcile.apply,
    logger: deps.logger,
    metrics: createReconcileMetrics(deps.registry),
  });
}
