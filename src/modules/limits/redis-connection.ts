import { createRequire } from "node:module";
import type { Redis } from "ioredis";
import type { Logger } from "pino";

/** A command to a Redis that stopped answering (no reset, no reply) gives up after this long. */
const COMMAND_TIMEOUT_MS = 500;
const CONNECT_TIMEOUT_MS = 2_000;
/** After a command timed out on an open connection, how often Redis is pinged until it answers again. */
const PROBE_INTERVAL_MS = 2_000;

/** The shared Redis of the rate-limit counters, and whether it can be used right now. */
export interface RedisConnection {
  readonly client: Redis;
  /** Connected and answering: worth sending a command to. */
  available(): boolean;
  /** A command failed on a connection that looked healthy (a timeout): treated like a lost connection. */
  commandFailed(error: unknown): void;
  /** Connects; a Redis that is down is not fatal, ioredis keeps reconnecting. */
  start(): Promise<void>;
  stop(): void;
}

/**
 * ioredis is loaded only when REDIS_URL is set. Commands are never queued while disconnected: a
 * caller learns at once that Redis is away and counts in the database instead. The state changes are
 * logged once each (not once per reconnect attempt or per request) and reported to `onChange`.
 */
export function connectRedis(
  url: string,
  logger: Logger,
  onChange: (available: boolean) => void,
): RedisConnection {
  const { Redis: RedisClient } = createRequire(import.meta.url)("ioredis") as typeof import("ioredis");
  const client = new RedisClient(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    lazyConnect: true,
    commandTimeout: COMMAND_TIMEOUT_MS,
    connectTimeout: CONNECT_TIMEOUT_MS,
  });
  let state: "starting" | "up" | "down" = "starting";
  let stopping = false;

  /** True when this call found Redis up (or starting) and marked it down. */
  const down = (cause: string): boolean => {
    if (stopping || state === "down") return false;
    state = "down";
    logger.warn({ cause }, "redis unavailable: rate limits are counted in the database until it is back");
    onChange(false);
    return true;
  };
  const up = () => {
    if (stopping || state === "up") return;
    if (state === "down") logger.info("redis available again: rate limits are counted in redis");
    state = "up";
    onChange(true);
  };
  // A connection that stays open but stopped answering emits nothing: ping it until it answers.
  const probe = () => {
    if (stopping || state !== "down") return;
    setTimeout(() => void client.ping().then(up, probe), PROBE_INTERVAL_MS).unref();
  };
  client.on("ready", up);
  client.on("error", (error: Error) => down(error.message));
  client.on("close", () => down("connection closed"));

  return {
    client,
    available: () => state === "up" && client.status === "ready",
    commandFailed(error) {
      if (down(error instanceof Error ? error.message : String(error))) probe();
    },
    async start() {
      await client.connect().catch((error: Error) => down(error.message));
    },
    stop() {
      stopping = true;
      client.disconnect();
    },
  };
}
