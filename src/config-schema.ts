import { z } from "zod";
import { productMapSchema, UPGRADE_POLICIES } from "./config-products.js";

/**
 * What the environment may hold, as zod schemas: each variable's type, default and limits. Only
 * config.ts reads the environment (loadConfig parses it with envSchema); the rules that look at
 * several variables together are there too.
 */

const optionalString = z
  .string()
  .trim()
  .transform((value) => (value === "" ? undefined : value))
  .optional();

export const envSchema = z.object({
  NODE_ENV: z.enum(["development", "production", "test"]).default("development"),
  PORT: z.coerce.number().int().min(0).max(65535).default(8001),
  HOST: z.string().default("0.0.0.0"),
  DATABASE_URL: optionalString.pipe(
    z
      .string()
      .regex(/^postgres(ql)?:\/\//, "must be a postgres:// or postgresql:// URL")
      .optional(),
  ),
  DATABASE_DIRECT_URL: optionalString.pipe(
    z
      .string()
      .regex(/^postgres(ql)?:\/\//, "must be a postgres:// or postgresql:// URL")
      .optional(),
  ),
  DATABASE_PREPARE: z.enum(["true", "false"], "must be true or false").optional(),
  DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(500).default(20),
  WRITE_QUEUE_LIMIT: z.coerce.number().int().min(1).max(1_000_000).default(10_000),
  DATA_DIR: z.string().default("./data"),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  JWT_SECRET: optionalString.pipe(z.string().min(32, "must be at least 32 characters").optional()),
  JWT_SECRET_PREVIOUS: optionalString.pipe(z.string().min(32, "must be at least 32 characters").optional()),
  JWT_ISSUER: optionalString,
  JWT_AUDIENCE: optionalString,
  JWKS_URL: optionalString.pipe(z.url("must be an http(s) URL").optional()),
  JWKS_MAX_AGE_SECONDS: z.coerce.number().int().min(1).max(86_400).default(600),
  JWT_ADMIN_CLAIM: optionalString,
  JWT_ADMIN_VALUE: optionalString.pipe(
    z
      .string()
      .regex(/^\S+$/, "must be one value without spaces (a space-separated claim is split on spaces)")
      .optional(),
  ),
  REVENUECAT_WEBHOOK_SECRET: optionalString.pipe(
    z.string().min(16, "must be at least 16 characters").optional(),
  ),
  REVENUECAT_WEBHOOK_SECRET_PREVIOUS: optionalString.pipe(
    z.string().min(16, "must be at least 16 characters").optional(),
  ),
  REVENUECAT_WEBHOOK_HMAC_SECRET: optionalString,
  REVENUECAT_ENVIRONMENTS: optionalString.pipe(
    z
      .string()
      .transform((list) => list.split(",").map((item) => item.trim().toUpperCase()))
      .pipe(z.array(z.enum(["PRODUCTION", "SANDBOX"], "must list PRODUCTION and/or SANDBOX")))
      .optional(),
  ),
  PRODUCT_TOKEN_MAP: optionalString.pipe(productMapSchema.optional()),
  SUBSCRIPTION_GRANT_FAMILY_SHARE: z.enum(["true", "false"], "must be true or false").default("false"),
  SUBSCRIPTION_GRANT_PROMOTIONAL: z.enum(["true", "false"], "must be true or false").default("false"),
  SUBSCRIPTION_ON_UPGRADE: z.enum(UPGRADE_POLICIES, "must be expire or keep").default("expire"),
  GRAPHQL_INTROSPECTION: z.enum(["true", "false"]).optional(),
  SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(0).max(600_000).default(10_000),
  DATABASE_DEADLINE_MS: z.coerce.number().int().min(100).max(60_000).default(4_000),
  SHUTDOWN_DRAIN_MS: z.coerce.number().int().min(0).max(600_000).optional(),
  MIGRATE_ON_START: z.enum(["true", "false"], "must be true or false").default("true"),
  ALLOW_EMBEDDED_IN_PRODUCTION: z.enum(["true", "false"], "must be true or false").default("false"),
  WEBHOOK_BODY_RETENTION_DAYS: z.coerce.number().int().min(0).max(36_500).default(30),
  RATE_LIMIT_RETENTION_HOURS: z.coerce.number().int().min(0).max(87_600).default(24),
  PURGE_INTERVAL_MINUTES: z.coerce.number().int().min(0).max(10_080).default(60),
  EXPIRY_SWEEP_INTERVAL_MS: z.coerce.number().int().min(0).max(3_600_000).default(15_000),
  HOLD_DEFAULT_TTL_SECONDS: z.coerce.number().int().min(1).max(86_400).default(600),
  HOLD_MAX_ACTIVE_PER_USER: z.coerce.number().int().min(1).max(10_000).default(16),
  HOLD_CAPTURE_OVERAGE: z.enum(["REJECT", "CAP"], "must be REJECT or CAP").default("REJECT"),
  RATE_LIMIT_SPEND_PER_MINUTE: z.coerce.number().int().min(1).default(120),
  RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: z.coerce.number().int().min(1).default(20),
  REDIS_URL: optionalString.pipe(
    z
      .string()
      .regex(/^rediss?:\/\//, "must be a redis:// URL")
      .optional(),
  ),
  REDIS_KEY_PREFIX: z
    .string()
    .trim()
    .max(100)
    .regex(/^[\w.:-]*$/, "letters, digits and . _ : - only")
    .default("token-ledger:"),
  TRUST_PROXY: z
    .string()
    .trim()
    .default("0")
    .refine((value) => value !== "true", {
      message:
        "set the number of proxies in front of the service (for example 1); 'true' trusted the left-most X-Forwarded-For entry, which the client writes",
    })
    .transform((value) => (value === "false" ? "0" : value))
    .pipe(z.coerce.number<string>({ error: "must be a number of proxies" }).int().min(0).max(10)),
  METRICS_TOKEN: optionalString,
  CORS_ORIGINS: optionalString.pipe(
    z
      .string()
      .transform((list) => list.split(",").map((item) => item.trim()))
      .pipe(
        z.union([
          z.tuple([z.literal("*")]).transform(() => "*" as const),
          z.array(
            z
              .string()
              .regex(/^https?:\/\/[^/?#\s]+$/, "must be * or origins such as https://app.example.com"),
          ),
        ]),
      )
      .optional(),
  ),
  METRICS_TOKEN_PREVIOUS: optionalString,
  LEGACY_TOKEN_ATTRIBUTE: optionalString,
  REVENUECAT_API_KEY: optionalString,
  REVENUECAT_PROJECT_ID: optionalString,
  REVENUECAT_API_URL: optionalString.pipe(z.url("must be an http(s) URL").optional()),
  RECONCILE_INTERVAL: optionalString.pipe(
    z
      .string()
      .regex(/^(off|0|\d+[mh])$/, "must be off, or an interval such as 60m or 1h")
      .transform((text) => (text === "off" ? 0 : Number.parseInt(text, 10) * (text.endsWith("h") ? 60 : 1)))
      .pipe(z.number().refine((m) => m === 0 || m >= 5, "must be at least 5m"))
      .optional(),
  ),
  RECONCILE_APPLY: z.enum(["true", "false"], "must be true or false").default("false"),
});

export type Env = z.infer<typeof envSchema>;
