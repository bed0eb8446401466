import { LRUCache } from "lru-cache";
import type { Logger } from "pino";
import {
  RateLimiterDrizzle,
  RateLimiterRedis,
  RateLimiterRes,
  type RateLimiterStoreAbstract,
} from "rate-limiter-flexible";
import type { AuthDoor } from "../../auth/guard.js";
import type { Database } from "../../db/client.js";
import { rateLimitsTable } from "../../db/schema.js";
import { connectRedis } from "./redis-connection.js";

export interface RateLimitConfig {
  readonly spendsPerMinute: number;
  readonly authFailuresPerMinute: number;
  /** Unset: the counters live in the service's own database. */
  readonly redisUrl?: string | undefined;
  /** Put before every key in Redis (which other applications may share). */
  readonly redisKeyPrefix?: string;
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
   * With the database store (or with Redis away) nothing happens here: the answer is a counter that
   * the ledger counts and checks in the spend's own statement, so the limit costs no round trip.
   */
  spend(userId: string): Promise<SpendLimit>;
  /**
   * Whether a client address is blocked at one door after too many failed authentications there.
   * Answered from this instance's memory, so it costs no round trip.
   */
  authBlocked(door: AuthDoor, clientAddress: string): LimitCheck;
  /** Counts one failed authentication at a door; blocks the address there past the limit. */
  authFailed(door: AuthDoor, clientAddress: string): Promise<LimitCheck>;
  /** Why the limits run in a lesser mode right now (Redis away), for /ready; undefined when they do not. */
  degraded(): string | undefined;
}

/** Which limit had to count in the database because Redis was away. */
export type LimitName = "spend" | "auth";

/** Where the limits report Redis coming and going, and each count that fell back to the database. */
export interface RateLimitEvents {
  storeAvailable(available: boolean): void;
  fellBack(limit: LimitName): void;
}

/**
 * rate-limiter-flexible counters in a store every instance shares: Redis when REDIS_URL is set,
 * otherwise this service's own PostgreSQL (or PGlite) through drizzle, so the limits hold across a
 * scaled-out deployment with no extra infrastructure.
 *
 * When Redis is set but cannot be reached, every count falls back to the database store (fail open to
 * the database, not to no limit): the limits keep holding, across instances too, and a spend is
 * neither refused nor left uncounted because of a cache. A spend then costs what it costs without
 * Redis. Only if the database is away as well does the request fail, with 503 DATABASE_UNAVAILABLE.
 */
export function createRateLimits(deps: {
  db: Database;
  config: RateLimitConfig;
  logger: Logger;
  events?: RateLimitEvents;
}): RateLimits {
  const events = deps.events ?? { storeAvailable: () => undefined, fellBack: () => undefined };
  const url = deps.config.redisUrl;
  const redis = url ? connectRedis(url, deps.logger, events.storeAvailable) : undefined;
  const keyPrefix = deps.config.redisKeyPrefix ?? "";
  const options = (prefix: string, points: number) => ({
    keyPrefix: prefix,
    points,
    duration: WINDOW_SECONDS,
  });
  const inDatabase = (prefix: string, points: number) =>
    new RateLimiterDrizzle({
      ...options(prefix, points),
      storeClient: deps.db,
      schema: rateLimitsTable,
      // The library's own hourly clean-up is off: the purge job applies RATE_LIMIT_RETENTION_HOURS.
      clearExpiredByTimeout: false,
    });
  const inRedis = (prefix: string, points: number) =>
    redis && new RateLimiterRedis({ ...options(`${keyPrefix}${prefix}`, points), storeClient: redis.client });

  /** Counts in Redis while it answers, else (or when the command fails) in the database. */
  async function count(limit: LimitName, store: Counters, key: string): Promise<LimitCheck | undefined> {
    if (store.redis && redis?.available()) {
      try {
        return await consume(store.redis, key);
      } catch (error) {
        redis.commandFailed(error);
      }
    }
    if (store.redis) events.fellBack(limit);
    return store.database ? consume(store.database, key) : undefined;
  }

  const spendsPerMinute = deps.config.spendsPerMinute;
  // Spends need no database limiter object: the ledger counts them in the spend's own statement.
  const spends: Counters = { redis: inRedis("spend", spendsPerMinute) };
  const blocked = new LRUCache<string, number>({ max: 100_000 });
  const failuresPerMinute = deps.config.authFailuresPerMinute;
  const authFailures: Record<AuthDoor, Counters> = {
    api: {
      redis: inRedis("authfail", failuresPerMinute),
      database: inDatabase("authfail", failuresPerMinute),
    },
    webhook: {
      redis: inRedis("webhookauthfail", failuresPerMinute),
      database: inDatabase("webhookauthfail", failuresPerMinute),
    },
  };

  return {
    async start() {
      await redis?.start();
    },
    async stop() {
      redis?.stop();
    },
    async spend(userId) {
      const counted = await count("spend", spends, userId);
      if (counted) return counted;
      const windowMs = WINDOW_SECONDS * 1000;
      return { allowed: true, counter: { key: `spend:${userId}`, points: spendsPerMinute, windowMs } };
    },
    authBlocked(door, clientAddress) {
      const until = blocked.get(`${door}:${clientAddress}`);
      const left = until === undefined ? 0 : until - Date.now();
      return left > 0 ? { allowed: false, retryAfterSeconds: Math.ceil(left / 1000) } : { allowed: true };
    },
    async authFailed(door, clientAddress) {
      // The count is shared by every instance; the block it leads to is remembered locally.
      const check = (await count("auth", authFailures[door], clientAddress)) ?? { allowed: true };
      if (!check.allowed)
        blocked.set(`${door}:${clientAddress}`, Date.now() + check.retryAfterSeconds * 1000);
      return check;
    },
    degraded: () =>
      redis && !redis.available() ? "redis unreachable: rate limits are counted in the database" : undefined,
  };
}

/** One limit's counters: in Redis when it is configured, and in the database. */
interface Counters {
  readonly redis?: RateLimiterStoreAbstract | undefined;
  readonly database?: RateLimiterStoreAbstract;
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
