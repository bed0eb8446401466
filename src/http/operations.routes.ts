import { equalsAnySecret } from "../auth/constant-time.js";
import { bearerToken } from "../auth/jwt.js";
import type { KeySetStatus } from "../auth/key-set.js";
import type { Metrics } from "../metrics.js";
import { HttpError, sendJson } from "./errors.js";
import type { Route } from "./router.js";

export interface OperationsDeps {
  readonly metrics: Metrics;
  /** True when the database answers and every migration is applied. */
  readonly isReady: () => Promise<boolean>;
  /** How long /ready waits for that answer before it says 503 (a probe must get an answer, not a hang). */
  readonly readyTimeoutMs: number;
  /**
   * What serves in a lesser mode right now, by component (e.g. rate limits counted in the database
   * while Redis is away). It keeps /ready at 200: taking every instance out of the load balancer for
   * a shared dependency the service can do without would turn a degradation into an outage.
   */
  readonly degraded: () => Readonly<Record<string, string>>;
  /** True once a stop has begun: the load balancer should send traffic elsewhere. */
  readonly isDraining?: () => boolean;
  /** Gauges read at scrape time rather than kept up to date. */
  readonly beforeScrape: () => void;
  /**
   * METRICS_TOKEN and, while rotating it, METRICS_TOKEN_PREVIOUS: when the first is set, /metrics
   * needs `Authorization: Bearer <either>`.
   */
  readonly metricsTokens: readonly [string | undefined, string | undefined];
  /** The identity provider's key set, when JWKS_URL is configured. */
  readonly keySetStatus: () => KeySetStatus | undefined;
}

/** /health (the process lives), /ready (it can serve, maybe degraded) and /metrics (Prometheus). */
export function operationsRoutes(deps: OperationsDeps): Route[] {
  const ready = boundedProbe(deps.isReady, deps.readyTimeoutMs);
  return [
    {
      method: "GET",
      path: "/health",
      auth: "none",
      handle: async (_req, res) => sendJson(res, 200, { status: "ok" }),
    },
    {
      method: "GET",
      path: "/ready",
      auth: "none",
      async handle(_req, res) {
        if (deps.isDraining?.()) return sendJson(res, 503, { status: "draining", reason: "shutting down" });
        if (await ready()) return sendJson(res, 200, readyBody(deps));
        sendJson(res, 503, { status: "unavailable", reason: "database not reachable or not migrated" });
      },
    },
    {
      method: "GET",
      path: "/metrics",
      auth: "none",
      async handle(req, res) {
        const [current] = deps.metricsTokens;
        const given = bearerToken(req.headers.authorization) ?? "";
        if (current && !equalsAnySecret(given, deps.metricsTokens)) {
          throw new HttpError(401, "Metrics need Authorization: Bearer <METRICS_TOKEN>", "UNAUTHENTICATED");
        }
        deps.beforeScrape();
        res.writeHead(200, { "content-type": deps.metrics.registry.contentType });
        res.end(await deps.metrics.registry.metrics());
      },
    },
  ];
}

/**
 * A readiness check that answers false after `timeoutMs` when the database does not answer. One check
 * runs at a time: while one hangs, later probes share it instead of each leaving a query behind.
 */
function boundedProbe(check: () => Promise<boolean>, timeoutMs: number): () => Promise<boolean> {
  let inFlight: Promise<boolean> | undefined;
  return async () => {
    if (!inFlight) {
      inFlight = check().catch(() => false);
      void inFlight.finally(() => {
        inFlight = undefined;
      });
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    try {
      return await Promise.race([inFlight, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  };
}

/**
 * Ready, or ready but degraded: what serves in a lesser mode (rate limits in the database while Redis
 * is away; cached identity-provider keys while the key set cannot be fetched) is named, and the status
 * stays 200 so a shared dependency's blip does not take every instance out of the load balancer.
 */
function readyBody(deps: OperationsDeps): Record<string, unknown> {
  const degraded: Record<string, unknown> = { ...deps.degraded() };
  const keys = deps.keySetStatus();
  if (keys && !keys.reachable) degraded.identityProviderKeys = keys;
  return Object.keys(degraded).length === 0 ? { status: "ready" } : { status: "degraded", degraded };
}
