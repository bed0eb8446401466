import { createRequire } from "node:module";
import type { Redis } from "ioredis";
import { LRUCache } from "lru-cache";
import type { Logger } from "pino";
import {
  type IRateLimiterStoreOptions,
  RateLimiterDrizzle,
  RateLimiterRedis,
  RateLimiterRes,
  type RateLimiterStoreAbstract,
} from "rate-limiter-flexible";
import type { AuthDoor } from "../../auth/guard.js";
import type { Database } from "../../db/client.js";
import { rateLimitsTable } from "../../db/schema.js";

export interface RateLimitConfig {
  readonly spendsPerMinute: number;
  readonly authFailuresPerMinute: number;
  /** Unset: the counters live in the service's own database. */
  readonly redisUrl?: string | undefined;
}

export type LimitCheck =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly retryAfterSeconds: number };

/** A fixed-window counter for the ledger to count and check in its own write, costing no round trip. */
export interface FoldedCounter {
  readonly key: string;
  readonly points: number;
  readonly windowMs: number;
}

export type SpendLimit = LimitCheck | { readonly allowed: true; readonly counter: FoldedCounter };

/** The window of every limit here. */
const WINDOW_SECONDS = 60;

export interface RateLimits {
  /** Connects the shared store when it is Redis; the database store needs nothing. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /**
   * The per-user spend limit; one user never limits another. With Redis the spend is counted now.
   * With the database store nothing happens here: the answer is a counter that the ledger counts and
   * checks in the spend's own statement, so the limit costs the spend no round trip of its own.
   */
  spend(userId: string): Promise<SpendLimit>;
  /**
   * Whether a client address is blocked at one door after too many failed authentications there.
   * Answered from this instance's memory, so it costs no round trip.
   */
  authBlocked(door: AuthDoor, clientAddress: string): LimitCheck;
  /** Counts one failed authentication at a door; blocks the address there past the limit. */
  authFailed(door: AuthDoor, clientAddress: string): Promise<LimitCheck>;
}

/**
 * rate-limiter-flexible counters in a store every instance shares: Redis when REDIS_URL is set,
 * otherwise this service's own PostgreSQL (or PGlite) through drizzle, so the limits hold across a
 * scaled-out deployment with no extra infrastructure.
 */
export function createRateLimits(deps: {
  db: Database;
  config: RateLimitConfig;
  logger: Logger;
}): RateLimits {
  const redis = redisClient(deps.config.redisUrl, deps.logger);
  const make = (keyPrefix: string, points: number): RateLimiterStoreAbstract => {
    const options: IRateLimiterStoreOptions = {
      keyPrefix,
      points,
      duration: WINDOW_SECONDS,
      storeClient: redis ?? deps.db,
    };
    return redis
      ? new RateLimiterRedis(options)
      : // The library's own hourly clean-up is off: the purge job applies RATE_LIMIT_RETENTION_HOURS.
        new RateLimiterDrizzle({ ...options, schema: rateLimitsTable, clearExpiredByTimeout: false });
  };
  const spendsPerMinute = deps.config.spendsPerMinute;
  const spends = redis ? make("spend", spendsPerMinute) : undefined;
  const blocked = new LRUCache<string, number>({ max: 100_000 });
  const authFailures = {
    api: make("authfail", deps.config.authFailuresPerMinute),
    webhook: make("webhookauthfail", deps.config.authFailuresPerMinute),
  };

  return {
    async start() {
      // A Redis that is down at start-up is not fatal: ioredis keeps reconnecting, and until then a
      // spend fails with 503 rather than going uncounted.
      await redis
        ?.connect()
        .catch((error: Error) => deps.logger.warn({ err: error.message }, "redis unavailable"));
    },
    async stop() {
      redis?.disconnect();
    },
    async spend(userId) {
      if (!spends)
        return {
          allowed: true,
          counter: { key: `spend:${userId}`, points: spendsPerMinute, windowMs: WINDOW_SECONDS * 1000 },
        };
      return consume(spends, userId);
    },
    authBlocked(door, clientAddress) {
      const until = blocked.get(`${door}:${clientAddress}`);
      const left = until === undefined ? 0 : until - Date.now();
      return left > 0 ? { allowed: false, retryAfterSeconds: Math.ceil(left / 1000) } : { allowed: true };
    },
    async authFailed(door, clientAddress) {
      // The count is shared by every instance; the block it leads to is remembered locally.
      const check = await consume(authFailures[door], clientAddress);
      if (!check.allowed)
        blocked.set(`${door}:${clientAddress}`, Date.now() + check.retryAfterSeconds * 1000);
      return check;
    },
  };
}

/**
 * A Redis client for the counters, created unconnected (building the app opens nothing); ioredis is
 * loaded only when REDIS_URL is set.
 */
function redisClient(url: string | undefined, logger: Logger): Redis | undefined {
  if (!url) return undefined;
  const { Redis: RedisClient } = createRequire(import.meta.url)("ioredis") as typeof import("ioredis");
  const redis = new RedisClient(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    lazyConnect: true,
  });
  redis.on("error", (error: Error) => logger.warn({ err: error.message }, "redis unavailable"));
  return redis;
}

async function consume(limiter: RateLimiterStoreAbstract, key: string): Promise<LimitCheck> {
  try {
    await limiter.consume(key);
    return { allowed: true };
  } catch (error) {
    if (error instanceof RateLimiterRes) return refused(error);
    throw error;
  }
}

function refused(state: RateLimiterRes): LimitCheck {
  return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(state.msBeforeNext / 1000)) };
}
