import { constantTimeEqual } from "../auth/constant-time.js";
import type { Metrics } from "../metrics.js";
import { HttpError, sendJson } from "./errors.js";
import type { Route } from "./router.js";

export interface OperationsDeps {
  readonly metrics: Metrics;
  /** True when the database answers and every migration is applied. */
  readonly isReady: () => Promise<boolean>;
  /** True once a stop has begun: the load balancer should send traffic elsewhere. */
  readonly isDraining?: () => boolean;
  /** Gauges read at scrape time rather than kept up to date. */
  readonly beforeScrape: () => void;
  /** When set, /metrics needs `Authorization: Bearer <token>`. */
  readonly metricsToken: string | undefined;
}

/** /health (the process lives), /ready (it can serve) and /metrics (Prometheus). */
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
        if (deps.isDraining?.()) return sendJson(res, 503, { status: "draining", reason: "shutting down" });
        if (await deps.isReady().catch(() => false)) return sendJson(res, 200, { status: "ready" });
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
