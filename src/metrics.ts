import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { KEY_SET_FAILURE_REASONS } from "./auth/key-set.js";
import { WEBHOOK_OUTCOMES } from "./db/schema.js";

/** Every answer to a RevenueCat delivery other than 200, by why it was not accepted. */
export const WEBHOOK_REJECTIONS = [
  "unauthorized",
  "bad_signature",
  "locked_out",
  "bad_body",
  "too_large",
  "unavailable",
  "error",
] as const;
export type WebhookRejection = (typeof WEBHOOK_REJECTIONS)[number];

export const SPEND_OUTCOMES = ["success", "insufficient", "rate_limited", "replay", "invalid"] as const;

/**
 * Prometheus metrics for one app instance; a registry of its own so tests can build several apps.
 * Every labelled counter starts with its known label values at 0: a series that first appears at 1
 * has no earlier sample, so `increase()` and `rate()` would miss the first event after each start.
 */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const jwksFetchFailures = new Counter({
    name: "token_jwks_fetch_failures_total",
    help: "Failed fetches of the JWKS_URL key set by reason (network, timeout, http_status, invalid).",
    labelNames: ["reason"] as const,
    registers: [registry],
  });
  const metrics = {
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
    webhookOutcomes: new Counter({
      name: "token_webhook_outcomes_total",
      help: "Accepted RevenueCat deliveries by outcome, whatever the event type (the alerts' series).",
      labelNames: ["outcome"] as const,
      registers: [registry],
    }),
    webhookRejections: new Counter({
      name: "token_webhook_rejected_total",
      help: "RevenueCat deliveries answered other than 200, by reason: unauthorized (wrong secret), bad_signature, locked_out, bad_body, too_large, unavailable (database), error.",
      labelNames: ["reason"] as const,
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
    rateLimitDegraded: new Gauge({
      name: "token_rate_limit_degraded",
      help: "1 while REDIS_URL is set but Redis cannot be reached, so rate limits are counted in the database.",
      registers: [registry],
    }),
    rateLimitFallbacks: new Counter({
      name: "token_rate_limit_fallbacks_total",
      help: "Rate-limit counts made in the database because Redis could not be reached, by limit (spend, auth).",
      labelNames: ["limit"] as const,
      registers: [registry],
    }),
    lotsExpiredTokens: new Counter({
      name: "token_lots_expired_tokens_total",
      help: "Tokens of lots that expired unused, written by the expiry sweeper (a spend's own touch step expires too, uncounted here).",
      registers: [registry],
    }),
    dueLotLag: new Gauge({
      name: "token_lots_due_lag_seconds",
      help: "Seconds since the oldest lot that is due but not yet expired ended, at the last sweep (0: none).",
      registers: [registry],
    }),
    holdsActive: new Gauge({
      name: "token_holds_active",
      help: "Active holds (issue 19), counted at the last expiry sweep.",
      registers: [registry],
    }),
    holdsHeldTokens: new Gauge({
      name: "token_holds_held_tokens",
      help: "Tokens set aside by active holds, at the last expiry sweep.",
      registers: [registry],
    }),
    holdsExpired: new Counter({
      name: "token_holds_expired_total",
      help: "Holds the expiry sweeper ended at their TTL (a request's own touch step expires too, uncounted here).",
      registers: [registry],
    }),
    holdCaptureShortfalls: new Counter({
      name: "token_hold_capture_shortfall_tokens_total",
      help: "Tokens a CAP capture asked beyond its hold that the free balance could not cover.",
      registers: [registry],
    }),
  };
  for (const outcome of WEBHOOK_OUTCOMES) {
    if (outcome !== "processing") metrics.webhookOutcomes.inc({ outcome }, 0);
  }
  for (const reason of WEBHOOK_REJECTIONS) metrics.webhookRejections.inc({ reason }, 0);
  for (const outcome of SPEND_OUTCOMES) metrics.spends.inc({ outcome }, 0);
  for (const limit of ["spend", "auth"]) metrics.rateLimitFallbacks.inc({ limit }, 0);
  for (const reason of KEY_SET_FAILURE_REASONS) jwksFetchFailures.inc({ reason }, 0);
  return metrics;
}

export type Metrics = ReturnType<typeof createMetrics>;
