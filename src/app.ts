import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { sql } from "drizzle-orm";
import type { Logger } from "pino";
import { createTokenVerifier, type Viewer } from "./auth/jwt.js";
import type { Config } from "./config.js";
import { type AppServices, authenticate } from "./context.js";
import type { DatabaseHandle } from "./db/client.js";
import { attachGraphqlWs, createYogaServer, type GraphqlWs } from "./graphql/server.js";
import { HttpError, sendError, sendJson } from "./http.js";
import { createMetrics, type Metrics } from "./metrics.js";
import { getBalanceRoute, historyRoute, spendRoute } from "./modules/ledger/ledger.rest.js";
import { createLedgerService } from "./modules/ledger/ledger.service.js";
import { BalanceHub } from "./modules/live/balance-hub.js";
import { createPurchasesService, type PurchasesService } from "./modules/purchases/purchases.service.js";
import { revenuecatWebhookRoute } from "./modules/purchases/revenuecat.route.js";

export interface AppDeps {
  readonly config: Config;
  readonly database: DatabaseHandle;
  readonly logger: Logger;
}

export interface App {
  readonly server: Server;
  readonly services: AppServices;
  readonly purchases: PurchasesService;
  readonly metrics: Metrics;
  /** Listens and starts the balance listener; resolves with the bound port. */
  start(port?: number, host?: string): Promise<number>;
  /** Stops accepting, closes WebSockets with 1001, waits for in-flight requests (bounded). */
  stop(timeoutMs?: number): Promise<void>;
}

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL, viewer: Viewer) => Promise<void>;

/** Builds the whole HTTP surface. Nothing listens and nothing is opened until start(). */
export function buildApp(deps: AppDeps): App {
  const { config, database, logger } = deps;
  const verify = createTokenVerifier(config.jwt);
  const metrics = createMetrics();
  const ledger = createLedgerService({ db: database.db, logger });
  const hub = new BalanceHub(database, logger);
  const services: AppServices = { db: database.db, ledger, hub, logger, metrics };
  const purchases = createPurchasesService({ db: database.db, logger, config: config.revenuecat });
  const yoga = createYogaServer({ config, services, verify });
  const webhookSecret = config.revenuecat.webhookSecret;
  if (!webhookSecret) throw new Error("REVENUECAT_WEBHOOK_SECRET is not configured");

  const tokenRoutes: Record<string, Handler> = {
    "GET /api/v1/tokens/balance": (_req, res, _url, viewer) => getBalanceRoute(services, viewer, res),
    "POST /api/v1/tokens/spend": (req, res, _url, viewer) => spendRoute(services, viewer, req, res),
    "GET /api/v1/tokens/history": (_req, res, url, viewer) => historyRoute(services, viewer, url, res),
  };

  async function route(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const path = url.pathname.replace(/\/+$/, "") || "/";
    if (path === "/graphql") {
      await yoga(req, res, { requestId });
      return;
    }
    if (path === "/health") return sendJson(res, 200, { status: "ok" });
    if (path === "/ready") return readiness(res);
    if (path === "/metrics") {
      res.writeHead(200, { "content-type": metrics.registry.contentType });
      res.end(await metrics.registry.metrics());
      return;
    }
    if (path === "/api/v1/tokens/webhook/revenuecat") {
      if (req.method !== "POST") throw new HttpError(405, "Use POST", "METHOD_NOT_ALLOWED");
      const stopTimer = metrics.webhookDuration.startTimer();
      try {
        await revenuecatWebhookRoute(
          {
            purchases,
            auth: { secret: webhookSecret as string, hmacSecret: config.revenuecat.hmacSecret },
            metrics,
          },
          req,
          res,
        );
      } finally {
        stopTimer();
      }
      return;
    }
    const handler = tokenRoutes[`${req.method} ${path}`];
    if (!handler) throw new HttpError(404, "Not found", "NOT_FOUND");
    const { viewer, authError } = await authenticate(verify, req.headers.authorization);
    if (!viewer) {
      res.setHeader("www-authenticate", 'Bearer realm="token-ledger"');
      throw new HttpError(
        401,
        authError ?? "Authentication required: send Authorization: Bearer <token>",
        "UNAUTHENTICATED",
      );
    }
    await handler(req, res, url, viewer);
  }

  async function readiness(res: ServerResponse): Promise<void> {
    try {
      await database.db.execute(sql`SELECT 1 FROM token_transactions LIMIT 1`);
      sendJson(res, 200, { status: "ready" });
    } catch {
      sendJson(res, 503, { status: "unavailable", reason: "database not reachable or not migrated" });
    }
  }

  const server = createServer((req, res) => {
    const given = req.headers["x-request-id"];
    const requestId = typeof given === "string" && /^[\w.-]{1,100}$/.test(given) ? given : randomUUID();
    res.setHeader("x-request-id", requestId);
    route(req, res, requestId).catch((error: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (error instanceof HttpError) {
        sendError(res, error);
        return;
      }
      logger.error({ err: error, requestId, path: req.url?.split("?")[0] }, "request failed");
      sendError(res, new HttpError(500, "Internal error; it was logged", "INTERNAL"));
    });
  });

  let ws: GraphqlWs | undefined;

  return {
    server,
    services,
    purchases,
    metrics,
    async start(port = config.port, host = config.host) {
      await hub.start();
      ws = attachGraphqlWs({ server, yoga, verify, services });
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => resolve());
      });
      return (server.address() as AddressInfo).port;
    },
    async stop(timeoutMs = 10_000) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await ws?.close(1001, "Server shutting down");
      const timer = setTimeout(() => server.closeAllConnections(), timeoutMs);
      await closed;
      clearTimeout(timer);
      await hub.stop();
    },
  };
}
