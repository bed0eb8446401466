import type { Logger } from "pino";
import type { Authentication } from "./auth/guard.js";
import type { Viewer } from "./auth/jwt.js";
import type { HealthHistory } from "./console/health-history.js";
import type { Database } from "./db/client.js";
import type { Metrics } from "./metrics.js";
import type { LedgerService } from "./modules/ledger/ledger.service.js";
import type { RateLimits } from "./modules/limits/rate-limits.js";
import type { BalanceHub } from "./modules/live/balance-hub.js";
import type { PurchasesService } from "./modules/purchases/purchases.service.js";

/** The services a GraphQL resolver may use; REST routes get only the few they need at build time. */
export interface AppServices {
  readonly db: Database;
  readonly ledger: LedgerService;
  readonly purchases: PurchasesService;
  readonly hub: BalanceHub;
  readonly limits: RateLimits;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** The last hour of this instance's numbers, for the console. */
  readonly health: HealthHistory;
}

/** Who is asking and which request this is: the same for REST, GraphQL over HTTP and WebSocket. */
export interface RequestContext extends Authentication {
  readonly requestId: string;
  /** The request's logger: every line carries its request id. */
  readonly logger: Logger;
}

export interface GraphQLContext extends AppServices, RequestContext {}

/**
 * The one context factory. REST routes read its RequestContext part; GraphQL resolvers (over HTTP or
 * a WebSocket) see the services too. `auth` comes from the authentication guard. (yoga copies the
 * context's own properties, so it is a plain object, not a class with getters.)
 */
export function createContext(
  services: AppServices,
  auth: Authentication,
  requestId: string,
): GraphQLContext {
  return {
    db: services.db,
    ledger: services.ledger,
    purchases: services.purchases,
    hub: services.hub,
    limits: services.limits,
    metrics: services.metrics,
    health: services.health,
    viewer: auth.viewer,
    authError: auth.authError,
    expired: auth.expired,
    requestId,
    logger: services.logger.child({ requestId }),
  };
}

/** A context whose viewer is known to be there (routes and fields that require a user). */
export type Authenticated<Context extends RequestContext> = Context & { readonly viewer: Viewer };
