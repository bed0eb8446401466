import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { createAuthGuard } from "./auth/guard.js";
import { createTokenVerifier } from "./auth/jwt.js";
import { createProviderKeySet } from "./auth/provider-keys.js";
import type { Config } from "./config.js";
import { consoleRoutes } from "./console/console.routes.js";
import { createHealthHistory } from "./console/health-history.js";
import { type AppServices, createContext } from "./context.js";
import type { DatabaseHandle } from "./db/client.js";
import { isMigrated } from "./db/migrate.js";
import { createGraphiqlPage } from "./graphql/graphiql.js";
import { attachGraphqlWs, type GraphqlWs } from "./graphql/websocket.js";
import { createYogaServer } from "./graphql/yoga.js";
import { listen, stopServer } from "./http/lifecycle.js";
import { operationsRoutes } from "./http/operations.routes.js";
import { clientAddress } from "./http/request.js";
import { createHttpServer } from "./http/server.js";
import { createMetrics } from "./metrics.js";
import { holdRoutes } from "./modules/ledger/ledger.holds.rest.js";
import { ledgerRoutes } from "./modules/ledger/ledger.rest.js";
import { createLedgerService } from "./modules/ledger/ledger.service.js";
import { createExpirySweeper } from "./modules/ledger/ledger.sweeper.js";
import { createRateLimits } from "./modules/limits/rate-limits.js";
import { BalanceHub } from "./modules/live/balance-hub.js";
import { createPurchasesService } from "./modules/purchases/purchases.service.js";
import { revenuecatRoute, WEBHOOK_PATH } from "./modules/purchases/revenuecat.route.js";
import { reconcileScheduleFromConfig } from "./modules/reconcile/reconcile-schedule.js";
import { createPurgeSchedule, createRetentionService } from "./modules/retention/retention.service.js";

export interface App {
  readonly server: Server;
  /** Starts the balance listener and the shared limit store, then listens; resolves with the port. */
  start(port?: number, host?: string): Promise<number>;
  /**
   * The first step of a stop: /ready answers 503 at once while everything is still served for
   * `drainMs`, so a load balancer takes the instance out before its listener closes; responses ask
   * clients to open a new connection (elsewhere) for their next request.
   */
  drain(drainMs: number): Promise<void>;
  /** Stops accepting, closes WebSockets with 1001, waits for in-flight requests (bounded). */
  stop(timeoutMs?: number): Promise<void>;
}

/** The composition root: wires services and transports. Opens nothing until start(). */
export function buildApp(deps: { config: Config; database: DatabaseHandle; logger: Logger }): App {
  const { config, database, logger } = deps;
  const services = createServices(config, database, logger);
  const { db, ledger, purchases, hub, limits, metrics, health } = services;
  const keySet = config.jwt.jwksUrl
    ? createProviderKeySet({
        url: config.jwt.jwksUrl,
        maxAgeMs: config.jwt.jwksMaxAgeSeconds * 1000,
        logger,
        metrics,
      })
    : undefined;
  const guard = createAuthGuard({ verify: createTokenVerifier(config.jwt, keySet), limits });
  const yoga = createYogaServer({ config, services, guard });
  const graphiql =
    config.nodeEnv === "production" ? undefined : createGraphiqlPage({ title: "token-ledger" });
  const webhook = {
    secret: required(config.revenuecat.webhookSecret),
    previousSecret: config.revenuecat.previousWebhookSecret,
    hmacSecret: config.revenuecat.hmacSecret,
  };
  const routes = [
    ...ledgerRoutes({ db, ledger, limits, metrics }),
    ...holdRoutes({ ledger, limits }),
    revenuecatRoute({ purchases, auth: webhook, metrics, guard }),
    ...operationsRoutes({
      metrics,
      metricsTokens: [config.metricsToken, config.previousMetricsToken],
      isReady: () => isMigrated(database),
      readyTimeoutMs: Math.min(1_000, config.databaseDeadlineMs),
      keySetStatus: () => keySet?.status(),
      degraded: (): Record<string, string> => {
        const rateLimits = limits.degraded();
        return rateLimits ? { rateLimits } : {};
      },
      isDraining: () => draining,
      beforeScrape: () => metrics.subscribers.set(hub.subscriberCount),
    }),
    ...consoleRoutes(),
  ];
  const server = createHttpServer({
    routes,
    graphql: async (req, res, scope) => {
      if (!(await graphiql?.serve(req, res))) await yoga.handle(req, res, scope);
    },
    guard,
    context: (auth, requestId) => createContext(services, auth, requestId),
    logger,
    trustedProxies: config.trustedProxies,
    corsOrigins: config.corsOrigins,
    webhookPath: WEBHOOK_PATH,
    deadlineMs: config.databaseDeadlineMs,
  });
  const addressOf = (request: IncomingMessage) => clientAddress(request, config.trustedProxies);
  const retention = createRetentionService({ db, config: config.retention });
  const purge = createPurgeSchedule({
    retention,
    intervalMinutes: config.retention.purgeIntervalMinutes,
    logger,
  });
  // RECONCILE_INTERVAL (off by default): the reconcile sweep, one instance at a time.
  const sweep = reconcileScheduleFromConfig({
    config,
    database,
    purchases,
    registry: metrics.registry,
    logger,
  });
  const expiry = createExpirySweeper({
    database,
    ledger,
    intervalMs: config.expirySweepIntervalMs,
    logger,
    metrics: {
      expired: (tokens) => metrics.lotsExpiredTokens.inc(tokens),
      lag: (seconds) => metrics.dueLotLag.set(seconds),
      holdsExpired: (holds) => metrics.holdsExpired.inc(holds),
      holds: (active, tokens) => {
        metrics.holdsActive.set(active);
        metrics.holdsHeldTokens.set(tokens);
      },
    },
  });
  let draining = false;
  // Registered before the request handler, so it applies to answers that are written at once too.
  server.prependListener("request", (_req, res: ServerResponse) => {
    if (draining) res.setHeader("connection", "close");
  });
  server.prependListener("request", (req: IncomingMessage, res: ServerResponse) => {
    if (!/^\/(graphql|api\/)/.test(req.url ?? "")) return;
    const started = performance.now();
    res.once("finish", () => health.recordResponse(performance.now() - started));
  });
  let ws: GraphqlWs | undefined;
  return {
    server,
    async start(port = config.port, host = config.host) {
      await Promise.all([hub.start(), limits.start()]);
      // Fetched ahead of the first token, without waiting: an unreachable provider is logged now.
      void keySet?.refreshIfDue();
      ws = attachGraphqlWs({ server, yoga, guard, metrics, addressOf, logger });
      await listen(server, port, host);
      purge.start();
      expiry.start();
      sweep?.start();
      health.start();
      return (server.address() as AddressInfo).port;
    },
    async drain(drainMs) {
      draining = true;
      if (drainMs > 0) await new Promise((resolve) => setTimeout(resolve, drainMs));
    },
    async stop(timeoutMs = config.shutdownTimeoutMs) {
      draining = true;
      await stopServer(server, timeoutMs, () => ws?.close(1001, "Server shutting down"));
      health.stop();
      await Promise.all([hub.stop(), limits.stop(), purge.stop(), expiry.stop(), sweep?.stop()]);
    },
  };
}

/** The domain's services, each told where its metrics go. */
function createServices(config: Config, database: DatabaseHandle, logger: Logger): AppServices {
  const metrics = createMetrics();
  const limits = createRateLimits({
    db: database.db,
    config: config.rateLimits,
    logger,
    events: {
      storeAvailable: (available) => metrics.rateLimitDegraded.set(available ? 0 : 1),
      fellBack: (limit) => metrics.rateLimitFallbacks.inc({ limit }),
    },
  });
  const onLedgerBatch = (size: number) => metrics.ledgerBatchSize.observe(size);
  const maxQueued = config.writeQueueLimit;
  const ledger = createLedgerService({
    database,
    logger,
    writer: { onBatch: onLedgerBatch, maxQueued },
    holds: { ...config.holds, onCaptureShortfall: (tokens) => metrics.holdCaptureShortfalls.inc(tokens) },
  });
  const purchases = createPurchasesService({
    database,
    ledger,
    logger,
    config: config.revenuecat,
    legacy: config.legacyTokenAttribute
      ? { attribute: config.legacyTokenAttribute, onSeen: () => metrics.legacyAttributeSeen.inc() }
      : undefined,
    writer: { onBatch: (size) => metrics.webhookBatchSize.observe(size), maxQueued },
  });
  const hub = new BalanceHub(database, logger);
  const health = createHealthHistory(metrics);
  return { db: database.db, ledger, purchases, hub, limits, metrics, logger, health };
}

function required(secret: string | undefined): string {
  if (!secret) throw new Error("REVENUECAT_WEBHOOK_SECRET is not configured");
  return secret;
}
