import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Redis } from "ioredis";
import type { Logger } from "pino";
import { createAuthGuard, TooManyAuthFailuresError } from "./auth/guard.js";
import { createTokenVerifier, type Viewer } from "./auth/jwt.js";
import type { Config } from "./config.js";
import type { AppServices } from "./context.js";
import type { DatabaseHandle } from "./db/client.js";
import { isMigrated } from "./db/migrate.js";
import { attachGraphqlWs, createYogaServer, type GraphqlWs } from "./graphql/server.js";
import {
  answerAfterDraining,
  clientAddress,
  constantTimeEqual,
  HttpError,
  isDatabaseUnavailable,
  MAX_BODY_BYTES,
  sendError,
  sendJson,
} from "./http.js";
import { createMetrics, type Metrics } from "./metrics.js";
import { getBalanceRoute, historyRoute, spendRoute } from "./modules/ledger/ledger.rest.js";
import { createLedgerService } from "./modules/ledger/ledger.service.js";
import { createRateLimits } from "./modules/limits/rate-limits.js";
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

type Handler = (
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  viewer: Viewer,
  scoped: AppServices,
) => Promise<void>;

const WEBHOOK_PATH = "/api/v1/tokens/webhook/revenuecat";

/** Builds the whole HTTP surface. Nothing listens until start(); nothing is opened but a Redis client. */
export function buildApp(deps: AppDeps): App {
  const { config, database, logger } = deps;
  const webhookSecret = config.revenuecat.webhookSecret;
  if (!webhookSecret) throw new Error("REVENUECAT_WEBHOOK_SECRET is not configured");
  const verify = createTokenVerifier(config.jwt);
  const metrics = createMetrics();
  const redis = config.rateLimits.redisUrl
    ? new Redis(config.rateLimits.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1 })
    : undefined;
  redis?.on("error", (error: Error) => logger.warn({ err: error.message }, "redis unavailable"));
  const limits = createRateLimits({ db: database.db, redis, config: config.rateLimits });
  const ledger = createLedgerService({ db: database.db, logger });
  const hub = new BalanceHub(database, logger);
  const purchases = createPurchasesService({ db: database.db, logger, config: config.revenuecat });
  const services: AppServices = { db: database.db, ledger, hub, logger, metrics, limits, purchases };
  const guard = createAuthGuard({ verify, limits });
  const yoga = createYogaServer({ config, services, guard });
  const webhookAuth = { secret: webhookSecret, hmacSecret: config.revenuecat.hmacSecret };

  const tokenRoutes: Record<string, Handler> = {
    "GET /api/v1/tokens/balance": (_req, res, _url, viewer, scoped) => getBalanceRoute(scoped, viewer, res),
    "POST /api/v1/tokens/spend": (req, res, _url, viewer, scoped) => spendRoute(scoped, viewer, req, res),
    "GET /api/v1/tokens/history": (_req, res, url, viewer, scoped) => historyRoute(scoped, viewer, url, res),
  };

  async function route(
    req: IncomingMessage,
    res: ServerResponse,
    address: string,
    requestId: string,
  ): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const path = url.pathname.replace(/\/+$/, "") || "/";
    // Node keeps the first of repeated Authorization headers; which one a proxy or client meant is
    // anyone's guess, so the request is refused rather than answered for one of them.
    if ((req.headersDistinct.authorization?.length ?? 0) > 1) {
      throw new HttpError(400, "Send one Authorization header, not several", "BAD_REQUEST");
    }
    if (path === "/health") return sendJson(res, 200, { status: "ok" });
    if (path === "/ready") return readiness(res);
    if (path === "/metrics") return metricsRoute(req, res);

    if (path === "/graphql") {
      guardGraphqlBody(req);
      await yoga.handle(req, res, { clientAddress: address, requestId });
      return;
    }
    if (path === WEBHOOK_PATH) {
      if (req.method !== "POST") throw new HttpError(405, "Use POST", "METHOD_NOT_ALLOWED");
      const stopTimer = metrics.webhookDuration.startTimer();
      try {
        const log = logger.child({ requestId });
        await revenuecatWebhookRoute(
          {
            purchases,
            auth: webhookAuth,
            metrics,
            logger: log,
            refused: () => guard.webhookRefused(address),
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
    const { viewer, authError } = await guard.authenticate(req.headers.authorization, address);
    if (!viewer) {
      res.setHeader("www-authenticate", 'Bearer realm="token-ledger"');
      throw new HttpError(
        401,
        authError ?? "Authentication required: send Authorization: Bearer <token>",
        "UNAUTHENTICATED",
      );
    }
    await handler(req, res, url, viewer, { ...services, logger: logger.child({ requestId }) });
  }

  /** yoga reads the body itself, so its size is judged by Content-Length before yoga sees it. */
  function guardGraphqlBody(req: IncomingMessage): void {
    if (req.method !== "POST") return;
    const length = req.headers["content-length"];
    if (length === undefined)
      throw new HttpError(411, "POST /graphql needs a Content-Length", "LENGTH_REQUIRED");
    if (Number(length) > MAX_BODY_BYTES) {
      throw new HttpError(413, `Request body exceeds ${MAX_BODY_BYTES} bytes`, "PAYLOAD_TOO_LARGE");
    }
  }

  async function readiness(res: ServerResponse): Promise<void> {
    if (await isMigrated(database).catch(() => false)) return sendJson(res, 200, { status: "ready" });
    sendJson(res, 503, { status: "unavailable", reason: "database not reachable or not migrated" });
  }

  async function metricsRoute(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (config.metricsToken) {
      if (!constantTimeEqual(req.headers.authorization ?? "", `Bearer ${config.metricsToken}`)) {
        throw new HttpError(401, "Metrics need Authorization: Bearer <METRICS_TOKEN>", "UNAUTHENTICATED");
      }
    }
    metrics.subscribers.set(hub.subscriberCount);
    res.writeHead(200, { "content-type": metrics.registry.contentType });
    res.end(await metrics.registry.metrics());
  }

  function fail(
    req: IncomingMessage,
    res: ServerResponse,
    error: unknown,
    requestId: string,
    path: string | undefined,
  ): void {
    if (res.headersSent) {
      res.destroy();
    } else if (error instanceof HttpError && error.status === 413) {
      answerAfterDraining(req, res, () => sendError(res, error));
    } else if (error instanceof HttpError) {
      sendError(res, error);
    } else if (error instanceof TooManyAuthFailuresError) {
      sendError(res, new HttpError(429, error.message, "RATE_LIMITED"), {
        "retry-after": String(error.retryAfterSeconds),
      });
    } else if (isDatabaseUnavailable(error)) {
      logger.warn({ path, requestId }, "database unavailable");
      const unavailable = new HttpError(
        503,
        "Database unavailable; try again shortly",
        "DATABASE_UNAVAILABLE",
      );
      sendError(res, unavailable, { "retry-after": "5" });
    } else {
      logger.error({ err: error, path, requestId }, "request failed");
      sendError(res, new HttpError(500, `Internal error (request ${requestId}); it was logged`, "INTERNAL"));
    }
  }

  const server = createServer((req, res) => {
    const given = req.headers["x-request-id"];
    const requestId = typeof given === "string" && /^[\w.-]{1,100}$/.test(given) ? given : randomUUID();
    res.setHeader("x-request-id", requestId);
    const address = clientAddress(req, config.trustedProxies);
    route(req, res, address, requestId).catch((error: unknown) =>
      fail(req, res, error, requestId, req.url?.split("?")[0]),
    );
  });

  let ws: GraphqlWs | undefined;

  return {
    server,
    services,
    purchases,
    metrics,
    async start(port = config.port, host = config.host) {
      await hub.start();
      ws = attachGraphqlWs({ server, yoga, guard, services, trustedProxies: config.trustedProxies });
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => resolve());
      });
      return (server.address() as AddressInfo).port;
    },
    async stop(timeoutMs = config.shutdownTimeoutMs) {
      // Stop accepting; idle keep-alive sockets close now, busy ones once their response is sent.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const idle = setInterval(() => server.closeIdleConnections(), 100);
      await ws?.close(1001, "Server shutting down");
      const deadline = setTimeout(() => server.closeAllConnections(), timeoutMs);
      await closed;
      clearInterval(idle);
      clearTimeout(deadline);
      await hub.stop();
      redis?.disconnect();
    },
  };
}
