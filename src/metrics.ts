import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { KEY_SET_FAILURE_REASONS } from "./auth/key-set.js";

/** Prometheus metrics for one app instance; a registry of its own so tests can build several apps. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const jwksFetchFailures = new Counter({
    name: "token_jwks_fetch_failures_total",
    help: "Failed fetches of the JWKS_URL key set by reason (network, timeout, http_status, invalid).",
    labelNames: ["reason"] as const,
    registers: [registry],
  });
  // At 0 from the start, so the first failure is an increase an alert can see.
  for (const reason of KEY_SET_FAILURE_REASONS) jwksFetchFailures.inc({ reason }, 0);
  return {
    jwksFetchFailures,
    registry,
    webhookEvents: new Counter({
      name: "token_webhook_events_total",
      help: "RevenueCat deliveries by event type and outcome.",
      labelNames: ["type", "outcome"] as const,
      registers: [registry],
    }),
    webhookDuration: new Histogram({
      name: "token_webhook_duration_seconds",
      help: "Time to process one RevenueCat delivery, including the database commit.",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    spends: new Counter({
      name: "token_spend_total",
      help: "Spend requests by outcome: success, insufficient, rate_limited, replay, invalid.",
      labelNames: ["outcome"] as const,
      registers: [registry],
    }),
    graphqlDuration: new Histogram({
      name: "graphql_operation_duration_seconds",
      help: "GraphQL operation execution time by operation name.",
      labelNames: ["operation"] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    subscribers: new Gauge({
      name: "token_live_subscribers",
      help: "balanceChanged subscriptions held by this instance.",
      registers: [registry],
    }),
    ledgerBatchSize: new Histogram({
      name: "token_ledger_batch_size",
      help: "Balance changes written together in one group-commit statement.",
      buckets: [1, 2, 4, 8, 16, 32, 64, 128],
      registers: [registry],
    }),
    webhookBatchSize: new Histogram({
      name: "token_webhook_batch_size",
      help: "RevenueCat deliveries recorded together in one group-commit statement.",
      buckets: [1, 2, 4, 8, 16, 32, 64, 128],
      registers: [registry],
    }),
    legacyAttributeSeen: new Counter({
      name: "token_legacy_attribute_seen_total",
      help: "Webhook deliveries still carrying LEGACY_TOKEN_ATTRIBUTE for a user whose legacy balance was imported (old app builds).",
      registers: [registry],
    }),
    wsConnections: new Gauge({
      name: "token_ws_connections",
      help: "Open graphql-ws connections on this instance.",
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
