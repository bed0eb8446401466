import type { Metrics } from "../metrics.js";

/**
 * A short in-process history of the service's own numbers, for the console's health charts: one
 * point per interval over the last hour, from the Prometheus metrics this instance already keeps
 * (no Prometheus server needed), plus the HTTP API's response times, which it measures itself.
 */
export interface HealthPoint {
  /** The end of the interval. */
  readonly at: Date;
  /** Purchases credited of those that should have credited (credited, unmapped, failed); null with none. */
  readonly purchaseSuccessRate: number | null;
  readonly purchases: number;
  /** Mean and slowest response time of the HTTP API (GraphQL and REST), in milliseconds. */
  readonly apiMeanMs: number | null;
  readonly apiMaxMs: number | null;
  readonly apiRequests: number;
  /** Mean time to process one webhook delivery, commit included, in milliseconds. */
  readonly webhookMeanMs: number | null;
  readonly webhooks: number;
  /** Spends refused or failed (insufficient, invalid, rate limited) of all spends; null with none. */
  readonly failedSpendRate: number | null;
  readonly spends: number;
}

interface Totals {
  credited: number;
  notCredited: number;
  webhookSeconds: number;
  webhookCount: number;
  spends: number;
  failedSpends: number;
}

const ZERO: Totals = {
  credited: 0,
  notCredited: 0,
  webhookSeconds: 0,
  webhookCount: 0,
  spends: 0,
  failedSpends: 0,
};

export interface HealthHistory {
  /** Counts one HTTP API response (the server calls this as each finishes). */
  recordResponse(milliseconds: number): void;
  /** The kept points, oldest first, and a last one for the interval still running. */
  points(): Promise<HealthPoint[]>;
  start(): void;
  stop(): void;
}

export function createHealthHistory(
  metrics: Metrics,
  options: { intervalMs?: number; windowMs?: number } = {},
): HealthHistory {
  const intervalMs = options.intervalMs ?? 30_000;
  const keep = Math.ceil((options.windowMs ?? 3_600_000) / intervalMs);
  const kept: HealthPoint[] = [];
  let previous: Totals | undefined;
  let api = { sum: 0, max: 0, count: 0 };
  let timer: NodeJS.Timeout | undefined;

  async function point(commit: boolean): Promise<HealthPoint> {
    const now = await totals(metrics);
    const before = previous ?? ZERO;
    const d = (key: keyof Totals) => Math.max(0, now[key] - before[key]);
    const purchases = d("credited") + d("notCredited");
    const spends = d("spends");
    const result: HealthPoint = {
      at: new Date(),
      purchaseSuccessRate: purchases > 0 ? d("credited") / purchases : null,
      purchases,
      apiMeanMs: api.count > 0 ? api.sum / api.count : null,
      apiMaxMs: api.count > 0 ? api.max : null,
      apiRequests: api.count,
      webhookMeanMs: d("webhookCount") > 0 ? (d("webhookSeconds") * 1000) / d("webhookCount") : null,
      webhooks: d("webhookCount"),
      failedSpendRate: spends > 0 ? d("failedSpends") / spends : null,
      spends,
    };
    if (commit) {
      previous = now;
      api = { sum: 0, max: 0, count: 0 };
      kept.push(result);
      if (kept.length > keep) kept.splice(0, kept.length - keep);
    }
    return result;
  }

  return {
    recordResponse(milliseconds) {
      api.sum += milliseconds;
      api.count += 1;
      api.max = Math.max(api.max, milliseconds);
    },
    async points() {
      return [...kept, await point(false)];
    },
    start() {
      if (timer) return;
      // The first interval starts from the counters as they are, not from zero.
      void totals(metrics).then((now) => {
        previous ??= now;
      });
      timer = setInterval(() => void point(true).catch(() => undefined), intervalMs);
      timer.unref();
    },
    stop() {
      clearInterval(timer);
      timer = undefined;
    },
  };
}

/** The cumulative counters the points are differences of. */
async function totals(metrics: Metrics): Promise<Totals> {
  const [outcomes, duration, spends] = await Promise.all([
    metrics.webhookOutcomes.get(),
    metrics.webhookDuration.get(),
    metrics.spends.get(),
  ]);
  const byOutcome = (name: string) =>
    outcomes.values.filter((v) => v.labels.outcome === name).reduce((sum, v) => sum + v.value, 0);
  const metric = (name: string) => duration.values.find((v) => v.metricName === name)?.value ?? 0;
  const spendTotal = spends.values.reduce((sum, v) => sum + v.value, 0);
  const spendOk = spends.values
    .filter((v) => v.labels.outcome === "success" || v.labels.outcome === "replay")
    .reduce((sum, v) => sum + v.value, 0);
  return {
    credited: byOutcome("credited"),
    notCredited: byOutcome("unmapped") + byOutcome("failed"),
    webhookSeconds: metric("token_webhook_duration_seconds_sum"),
    webhookCount: metric("token_webhook_duration_seconds_count"),
    spends: spendTotal,
    failedSpends: spendTotal - spendOk,
  };
}
