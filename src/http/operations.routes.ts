import { constantTimeEqual } from "../auth/constant-time.js";
import type { Metrics } from "../metrics.js";
import { HttpError, sendJson } from "./errors.js";
import type { Route } from "./router.js";

export interface OperationsDeps {
  readonly metrics: Metrics;
  /** True when the database answers and every migration is applied. */
  readonly isReady: () => Promise<boolean>;
  /**
   * What serves in a lesser mode right now, by component (e.g. rate limits counted in the database
   * while Redis is away). It keeps /ready at 200: taking every instance out of the load balancer for
   * a shared dependency the service can do without would turn a degradation into an outage.
   */
  readonly degraded: () => Readonly<Record<string, string>>;
  /** Gauges read at scrape time rather than kept up to date. */
  readonly beforeScrape: () => void;
  /** When set, /metrics needs `Authorization: Bearer <token>`. */
  readonly metricsToken: string | undefined;
}

/** /health (the process lives), /ready (it can serve, maybe degraded) and /metrics (Prometheus). */
export function operationsRoutes(deps: OperationsDeps): Route[] {
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
        if (await deps.isReady().catch(() => false)) {
          const degraded = deps.degraded();
          if (Object.keys(degraded).length === 0) return sendJson(res, 200, { status: "ready" });
          return sendJson(res, 200, { status: "degraded", degraded });
        }
        sendJson(res, 503, { status: "unavailable", reason: "database not reachable or not migrated" });
      },
    },
    {
      method: "GET",
      path: "/metrics",
      auth: "none",
      async handle(req, res) {
        const expected = `Bearer ${deps.metricsToken}`;
        if (deps.metricsToken && !constantTimeEqual(req.headers.authorization ?? "", expected)) {
          throw new HttpError(401, "Metrics need Authorization: Bearer <METRICS_TOKEN>", "UNAUTHENTICATED");
        }
        deps.beforeScrape();
        res.writeHead(200, { "content-type": deps.metrics.registry.contentType });
        res.end(await deps.metrics.registry.metrics());
      },
    },
  ];
}
