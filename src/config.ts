import { poolerProblems } from "./config-database.js";
import type { ProductTokenMap, UpgradePolicy } from "./config-products.js";
import { type Env, envSchema } from "./config-schema.js";

/**
 * The seed's product map: what each RevenueCat product id is worth in tokens. Operators override it
 * with PRODUCT_TOKEN_MAP.
 */
export const DEFAULT_PRODUCT_TOKEN_MAP: ProductTokenMap = Object.freeze({
  pro_monthly: 500,
  pro_annual: 6000,
  token_pack_small: 100,
  token_pack_medium: 500,
  token_pack_large: 1200,
});

export type NodeEnv = "development" | "production" | "test";

export interface Config {
  readonly nodeEnv: NodeEnv;
  readonly port: number;
  readonly host: string;
  /** Unset means the embedded PGlite database in `dataDir`. */
  readonly databaseUrl: string | undefined;
  /**
   * A connection straight to PostgreSQL (or a session-mode pool) for LISTEN and migrations, when
   * DATABASE_URL goes through a transaction-mode pooler; unset means DATABASE_URL serves for all.
   */
  readonly databaseDirectUrl: string | undefined;
  /** Named prepared statements; off for poolers that cannot carry them (PgBouncer before 1.21). */
  readonly databasePrepare: boolean;
  readonly databasePoolSize: number;
  /** The most writes (spends, grants, deliveries) that may wait for the database; past it, 503 OVERLOADED. */
  readonly writeQueueLimit: number;
  readonly dataDir: string;
  readonly logLevel: string;
  readonly jwt: {
    readonly secret: string | undefined;
    /** The secret being rotated out: tokens it signed still verify; nothing new is signed with it. */
    readonly previousSecret: string | undefined;
    readonly issuer: string | undefined;
    readonly audience: string | undefined;
    readonly jwksUrl: string | undefined;
    /** Keys older than this are fetched again, so a key the provider removed stops verifying. */
    readonly jwksMaxAgeSeconds: number;
    /** The claim that grants admin: a space-separated string (OAuth `scope`) or an array of strings. */
    readonly adminClaim: string;
    /** The value in `adminClaim` that makes the caller an admin. */
    readonly adminValue: string;
  };
  readonly revenuecat: {
    readonly webhookSecret: string | undefined;
    /** The webhook secret being rotated out, still accepted until it is removed. */
    readonly previousWebhookSecret: string | undefined;
    readonly hmacSecret: string | undefined;
    readonly environments: readonly string[];
    readonly productTokenMap: ProductTokenMap;
    /** Whether a subscription shared through Apple Family Sharing credits the member (default no). */
    readonly grantFamilyShare: boolean;
    /** Whether a RevenueCat promotional grant (`store` or `period_type` PROMOTIONAL) credits (default no). */
    readonly grantPromotional: boolean;
    /** An immediate upgrade expires the older lots' unused tokens (`expire`) or leaves them to their end. */
    readonly onUpgrade: UpgradePolicy;
  };
  readonly graphqlIntrospection: boolean;
  /** How long a graceful stop waits for in-flight requests. */
  readonly shutdownTimeoutMs: number;
  /** How long a request waits on the database before it is answered 503 DATABASE_UNAVAILABLE. */
  readonly databaseDeadlineMs: number;
  /**
   * After SIGTERM, how long /ready answers 503 while everything is still served, so a load balancer
   * takes the instance out before its listener closes.
   */
  readonly shutdownDrainMs: number;
  /** Whether the server applies pending migrations at start (else `npm run migrate` does). */
  readonly migrateOnStart: boolean;
  /** Production on the embedded database (a folder a container loses) only when explicitly allowed. */
  readonly allowEmbeddedInProduction: boolean;
  /** How long personal data outside the ledger is kept; see docs/operations.md. */
  readonly retention: {
    /** Stored webhook bodies are reduced to the fields the service acts on after this many days. */
    readonly webhookBodyDays: number;
    /** Expired rate-limit counters (client addresses, user ids) are deleted after this many hours. */
    readonly rateLimitHours: number;
    /** How often a running server purges; 0: never (run `npm run purge` from a scheduler instead). */
    readonly purgeIntervalMinutes: number;
  };
  /** How often a running server expires due lots (EXPIRE entries, balanceChanged); 0: never. */
  readonly expirySweepIntervalMs: number;
  /** Holds (issue 19): a reserve's TTL when it gives none, active holds per user, a capture's overage. */
  readonly holds: {
    readonly defaultTtlSeconds: number;
    readonly maxActivePerUser: number;
    readonly captureOverage: "REJECT" | "CAP";
  };
  readonly rateLimits: {
    readonly spendsPerMinute: number;
    readonly authFailuresPerMinute: number;
    /** Unset: counters live in the service's own database. */
    readonly redisUrl: string | undefined;
    /** Put before every Redis key, so a Redis shared with other applications keeps ours apart. */
    readonly redisKeyPrefix: string;
  };
  /**
   * How many proxies in front of the service append to X-Forwarded-For; the client address is the
   * right-most entry not written by one of them. 0: the socket's own address.
   */
  readonly trustedProxies: number;
  /**
   * Which web origins may call /graphql and the REST routes from a browser: "*" (any: the only
   * credential is a bearer token a foreign page cannot read) or a list of exact origins.
   */
  readonly corsOrigins: "*" | readonly string[];
  /** When set, GET /metrics requires `Authorization: Bearer <token>`. */
  readonly metricsToken: string | undefined;
  /** The metrics token being rotated out, still accepted until it is removed. */
  readonly previousMetricsToken: string | undefined;
  /** The legacy token attribute; webhooks still carrying it for imported users reveal old app builds. */
  readonly legacyTokenAttribute: string | undefined;
  /** The scheduled sweep of `npm run reconcile` inside the service (docs/reconcile.md). */
  readonly reconcile: {
    /** How often a sweep of the last day's active users runs; 0: never (the default). */
    readonly intervalMinutes: number;
    /** Whether the sweep credits what is missing, or only reports it (the default). */
    readonly apply: boolean;
  };
  /** RevenueCat's REST API v2, for the legacy import (read customers, clear the attribute) and reconcile. */
  readonly revenuecatApi: {
    readonly url: string;
    readonly key: string | undefined;
    readonly projectId: string | undefined;
  };
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((problem) => `  - ${problem}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/**
 * The only reader of the environment. Lists every problem at once, so an operator fixes them in one
 * go, and never echoes a value back (values may be secrets).
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`));
  }
  const e = parsed.data;
  const production = e.NODE_ENV === "production";
  const problems: string[] = [];
  if (production && !e.JWT_SECRET && !e.JWKS_URL) {
    problems.push("JWT_SECRET or JWKS_URL: one is required when NODE_ENV=production");
  }
  if (production && !e.REVENUECAT_WEBHOOK_SECRET) {
    problems.push("REVENUECAT_WEBHOOK_SECRET: required when NODE_ENV=production");
  }
  if (production && !e.PRODUCT_TOKEN_MAP) {
    problems.push(
      "PRODUCT_TOKEN_MAP: required when NODE_ENV=production (without it, real purchases would be credited the demo map's amounts)",
    );
  }
  problems.push(...identityProblems(e, production), ...rotationProblems(e), ...poolerProblems(e));
  if (production && !e.DATABASE_URL && e.ALLOW_EMBEDDED_IN_PRODUCTION !== "true") {
    problems.push(
      "DATABASE_URL: required when NODE_ENV=production; without it the data lives in an embedded " +
        "database in DATA_DIR, which a container loses when it is replaced. Set " +
        "ALLOW_EMBEDDED_IN_PRODUCTION=true to run on it anyway (one process, DATA_DIR on a kept volume)",
    );
  }
  if ((e.RECONCILE_INTERVAL ?? 0) > 0 && (!e.REVENUECAT_API_KEY || !e.REVENUECAT_PROJECT_ID)) {
    problems.push(
      "RECONCILE_INTERVAL: the sweep reads RevenueCat's API v2: set REVENUECAT_API_KEY and REVENUECAT_PROJECT_ID",
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);

  return Object.freeze({
    nodeEnv: e.NODE_ENV,
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    databaseDirectUrl: e.DATABASE_DIRECT_URL,
    databasePrepare: e.DATABASE_PREPARE !== "false",
    databasePoolSize: e.DATABASE_POOL_SIZE,
    writeQueueLimit: e.WRITE_QUEUE_LIMIT,
    dataDir: e.DATA_DIR,
    logLevel: e.LOG_LEVEL,
    jwt: Object.freeze({
      secret: e.JWT_SECRET,
      previousSecret: e.JWT_SECRET_PREVIOUS,
      issuer: e.JWT_ISSUER,
      audience: e.JWT_AUDIENCE,
      jwksUrl: e.JWKS_URL,
      jwksMaxAgeSeconds: e.JWKS_MAX_AGE_SECONDS,
      adminClaim: e.JWT_ADMIN_CLAIM ?? "scope",
      adminValue: e.JWT_ADMIN_VALUE ?? "tokens:admin",
    }),
    revenuecat: Object.freeze({
      webhookSecret: e.REVENUECAT_WEBHOOK_SECRET,
      previousWebhookSecret: e.REVENUECAT_WEBHOOK_SECRET_PREVIOUS,
      hmacSecret: e.REVENUECAT_WEBHOOK_HMAC_SECRET,
      environments: Object.freeze(
        e.REVENUECAT_ENVIRONMENTS ?? (production ? ["PRODUCTION"] : ["PRODUCTION", "SANDBOX"]),
      ),
      productTokenMap: Object.freeze(e.PRODUCT_TOKEN_MAP ?? DEFAULT_PRODUCT_TOKEN_MAP),
      grantFamilyShare: e.SUBSCRIPTION_GRANT_FAMILY_SHARE === "true",
      grantPromotional: e.SUBSCRIPTION_GRANT_PROMOTIONAL === "true",
      onUpgrade: e.SUBSCRIPTION_ON_UPGRADE,
    }),
    graphqlIntrospection: e.GRAPHQL_INTROSPECTION ? e.GRAPHQL_INTROSPECTION === "true" : !production,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    databaseDeadlineMs: e.DATABASE_DEADLINE_MS,
    shutdownDrainMs: e.SHUTDOWN_DRAIN_MS ?? (production ? 5_000 : 0),
    migrateOnStart: e.MIGRATE_ON_START === "true",
    allowEmbeddedInProduction: e.ALLOW_EMBEDDED_IN_PRODUCTION === "true",
    retention: Object.freeze({
      webhookBodyDays: e.WEBHOOK_BODY_RETENTION_DAYS,
      rateLimitHours: e.RATE_LIMIT_RETENTION_HOURS,
      purgeIntervalMinutes: e.PURGE_INTERVAL_MINUTES,
    }),
    expirySweepIntervalMs: e.EXPIRY_SWEEP_INTERVAL_MS,
    holds: Object.freeze({
      defaultTtlSeconds: e.HOLD_DEFAULT_TTL_SECONDS,
      maxActivePerUser: e.HOLD_MAX_ACTIVE_PER_USER,
      captureOverage: e.HOLD_CAPTURE_OVERAGE,
    }),
    rateLimits: Object.freeze({
      spendsPerMinute: e.RATE_LIMIT_SPEND_PER_MINUTE,
      authFailuresPerMinute: e.RATE_LIMIT_AUTH_FAILURES_PER_MINUTE,
      redisUrl: e.REDIS_URL,
      redisKeyPrefix: e.REDIS_KEY_PREFIX,
    }),
    trustedProxies: e.TRUST_PROXY,
    corsOrigins: e.CORS_ORIGINS ?? "*",
    metricsToken: e.METRICS_TOKEN,
    previousMetricsToken: e.METRICS_TOKEN_PREVIOUS,
    legacyTokenAttribute: e.LEGACY_TOKEN_ATTRIBUTE,
    reconcile: Object.freeze({
      intervalMinutes: e.RECONCILE_INTERVAL ?? 0,
      apply: e.RECONCILE_APPLY === "true",
    }),
    revenuecatApi: Object.freeze({
      url: (e.REVENUECAT_API_URL ?? "https://api.revenuecat.com").replace(/\/+$/, ""),
      key: e.REVENUECAT_API_KEY,
      projectId: e.REVENUECAT_PROJECT_ID,
    }),
  });
}

/**
 * A key set such as Google's (every Firebase project) or a shared IdP's serves many tenants: without
 * an issuer and an audience, a token any of them signed would be accepted here, for any `sub`, with
 * whatever admin claim its tenant chose to put in it. Production therefore requires both.
 */
function identityProblems(e: Env, production: boolean): string[] {
  const problems: string[] = [];
  if (production && e.JWKS_URL && (!e.JWT_ISSUER || !e.JWT_AUDIENCE)) {
    const missing = [e.JWT_ISSUER ? undefined : "JWT_ISSUER", e.JWT_AUDIENCE ? undefined : "JWT_AUDIENCE"];
    problems.push(
      `${missing.filter(Boolean).join(" and ")}: required with JWKS_URL when NODE_ENV=production; without an issuer and an audience, a token signed by the key set for any other tenant (any Firebase project shares Google's key set) would be accepted for any user, with an admin claim its owner chose`,
    );
  }
  return problems;
}

/** A previous secret is the old half of a rotation: alone, it would be the only secret, under a wrong name. */
function rotationProblems(e: Env): string[] {
  const problems: string[] = [];
  const pairs = [
    ["JWT_SECRET_PREVIOUS", e.JWT_SECRET_PREVIOUS, "JWT_SECRET", e.JWT_SECRET],
    [
      "REVENUECAT_WEBHOOK_SECRET_PREVIOUS",
      e.REVENUECAT_WEBHOOK_SECRET_PREVIOUS,
      "REVENUECAT_WEBHOOK_SECRET",
      e.REVENUECAT_WEBHOOK_SECRET,
    ],
    ["METRICS_TOKEN_PREVIOUS", e.METRICS_TOKEN_PREVIOUS, "METRICS_TOKEN", e.METRICS_TOKEN],
  ] as const;
  for (const [previousName, previous, currentName, current] of pairs) {
    if (previous && !current)
      problems.push(`${previousName}: set only beside ${currentName}, while rotating it`);
  }
  return problems;
}
