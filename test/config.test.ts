import { mkdtemp, readFile, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, DEFAULT_PRODUCT_TOKEN_MAP, loadConfig } from "../src/config.js";
import { withDevSecrets } from "../src/dev-secrets.js";

function problemsOf(env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe("configuration", () => {
  it("has working defaults for development", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      nodeEnv: "development",
      port: 8001,
      databaseUrl: undefined,
      dataDir: "./data",
      graphqlIntrospection: true,
    });
    expect(config.revenuecat.productTokenMap).toEqual(DEFAULT_PRODUCT_TOKEN_MAP);
    expect(config.revenuecat.environments).toEqual(["PRODUCTION", "SANDBOX"]);
  });

  it("DATABASE_DEADLINE_MS: 4 s by default (every answer within 5 s), set in ms, refused below 100", () => {
    expect(loadConfig({}).databaseDeadlineMs).toBe(4_000);
    expect(loadConfig({ DATABASE_DEADLINE_MS: "2500" }).databaseDeadlineMs).toBe(2_500);
    expect(problemsOf({ DATABASE_DEADLINE_MS: "50" }).join("\n")).toMatch(/DATABASE_DEADLINE_MS/);
  });

  it("production refuses to start without its secrets, naming each", () => {
    const problems = problemsOf({ NODE_ENV: "production" });
    expect(problems.join("\n")).toMatch(/JWT_SECRET or JWKS_URL/);
    expect(problems.join("\n")).toMatch(/REVENUECAT_WEBHOOK_SECRET/);
  });

  it("production refuses to start without PRODUCT_TOKEN_MAP instead of crediting the demo map", () => {
    const secrets = {
      NODE_ENV: "production",
      DATABASE_URL: "postgres://db/ledger",
      JWT_SECRET: "s".repeat(32),
      REVENUECAT_WEBHOOK_SECRET: "w".repeat(24),
    };
    expect(problemsOf(secrets).join("\n")).toMatch(/PRODUCT_TOKEN_MAP: required when NODE_ENV=production/);
    expect(problemsOf({ ...secrets, PRODUCT_TOKEN_MAP: '{"coins_100":100}' })).toEqual([]);
  });

  it("CORS_ORIGINS is * by default, or a list of origins", () => {
    expect(loadConfig({}).corsOrigins).toBe("*");
    expect(loadConfig({ CORS_ORIGINS: "https://a.example, http://localhost:5173" }).corsOrigins).toEqual([
      "https://a.example",
      "http://localhost:5173",
    ]);
    expect(problemsOf({ CORS_ORIGINS: "https://a.example/path" }).join()).toContain("CORS_ORIGINS");
  });

  it("production starts with its secrets and accepts only PRODUCTION purchases by default", () => {
    const config = loadConfig({
      NODE_ENV: "production",
      DATABASE_URL: "postgres://db/ledger",
      JWT_SECRET: "s".repeat(32),
      REVENUECAT_WEBHOOK_SECRET: "w".repeat(24),
      PRODUCT_TOKEN_MAP: '{"coins_100":100}',
    });
    expect(config.revenuecat.environments).toEqual(["PRODUCTION"]);
    expect(config.graphqlIntrospection).toBe(false);
    expect(config.shutdownDrainMs).toBe(5000);
    expect(loadConfig({}).shutdownDrainMs).toBe(0);
  });

  it("production refuses the embedded database unless explicitly allowed", () => {
    const secrets = {
      NODE_ENV: "production",
      JWT_SECRET: "s".repeat(32),
      REVENUECAT_WEBHOOK_SECRET: "w".repeat(24),
      PRODUCT_TOKEN_MAP: '{"coins_100":100}',
    };
    expect(problemsOf(secrets).join()).toMatch(/DATABASE_URL: required .*ALLOW_EMBEDDED_IN_PRODUCTION=true/);
    expect(loadConfig({ ...secrets, ALLOW_EMBEDDED_IN_PRODUCTION: "true" }).allowEmbeddedInProduction).toBe(
      true,
    );
  });

  it("lists every problem at once and never echoes a value", () => {
    const problems = problemsOf({
      PORT: "eighty",
      DATABASE_URL: "mysql://secret-password@host/db",
      JWT_SECRET: "short-secret-value",
      PRODUCT_TOKEN_MAP: '{"pack": 1.5, "other": -3}',
      REVENUECAT_ENVIRONMENTS: "PRODUCTION,STAGING",
      LOG_LEVEL: "loud",
    });
    const text = problems.join("\n");
    for (const name of [
      "PORT",
      "DATABASE_URL",
      "JWT_SECRET",
      "PRODUCT_TOKEN_MAP",
      "REVENUECAT_ENVIRONMENTS",
      "LOG_LEVEL",
    ]) {
      expect(text).toContain(name);
    }
    expect(text).not.toContain("secret-password");
    expect(text).not.toContain("short-secret-value");
  });

  it.each([['{"a": 0}'], ['{"a": 1.5}'], ['{"a": "100"}'], ["[100]"], ["not json"]])(
    "refuses PRODUCT_TOKEN_MAP %s",
    (map) => {
      expect(problemsOf({ PRODUCT_TOKEN_MAP: map }).join()).toContain("PRODUCT_TOKEN_MAP");
    },
  );

  it("accepts a custom PRODUCT_TOKEN_MAP", () => {
    expect(loadConfig({ PRODUCT_TOKEN_MAP: '{"coins_1000": 1000}' }).revenuecat.productTokenMap).toEqual({
      coins_1000: 1000,
    });
  });

  it("development generates secrets once, keeps them in DATA_DIR (0600) and reuses them", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "tl-config-"));
    const first = await withDevSecrets(loadConfig({ DATA_DIR: dataDir }));
    expect(first.generated).toEqual(["JWT_SECRET", "REVENUECAT_WEBHOOK_SECRET"]);
    expect(first.config.jwt.secret?.length).toBeGreaterThanOrEqual(32);
    const second = await withDevSecrets(loadConfig({ DATA_DIR: dataDir }));
    expect(second.config.jwt.secret).toBe(first.config.jwt.secret);
    expect(second.config.revenuecat.webhookSecret).toBe(first.config.revenuecat.webhookSecret);
    expect((await stat(first.file)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(first.file, "utf8"))).toHaveProperty("jwtSecret");
  });

  it("an explicit secret wins over the generated one", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "tl-config-"));
    const { config, generated } = await withDevSecrets(
      loadConfig({
        DATA_DIR: dataDir,
        JWT_SECRET: "e".repeat(40),
        REVENUECAT_WEBHOOK_SECRET: "r".repeat(20),
      }),
    );
    expect(generated).toEqual([]);
    expect(config.jwt.secret).toBe("e".repeat(40));
  });

  it("PRODUCT_TOKEN_MAP: numbers and subscription objects side by side, with the subscription defaults filled in", () => {
    const config = loadConfig({
      PRODUCT_TOKEN_MAP: JSON.stringify({
        pack_500: 500,
        pro_monthly: { tokens: 1000, rollover: { cap: 500 }, creditGroup: "pro" },
        "pro:annual": { tokens: 12000, expires: "period_end", trialTokens: 100 },
      }),
    });
    expect(config.revenuecat.productTokenMap).toEqual({
      pack_500: 500,
      pro_monthly: {
        tokens: 1000,
        expires: "period_end",
        trialTokens: 0,
        rollover: { cap: 500 },
        creditGroup: "pro",
      },
      "pro:annual": { tokens: 12000, expires: "period_end", trialTokens: 100 },
    });
    expect(config.revenuecat).toMatchObject({
      grantFamilyShare: false,
      grantPromotional: false,
      onUpgrade: "expire",
    });
  });

  it("PRODUCT_TOKEN_MAP: every problem of a subscription entry is listed at once, naming the product and the field", () => {
    const problems = problemsOf({
      PRODUCT_TOKEN_MAP: JSON.stringify({
        pack: 0,
        pro: { tokens: 1.5, expire: "period_end", trialTokens: -1 },
        max: { tokens: 10, expires: "tomorrow", rollover: { cap: 0 } },
        never: { tokens: 10, expires: "never", rollover: { cap: 5 } },
        text: "100",
      }),
      SUBSCRIPTION_ON_UPGRADE: "merge",
      SUBSCRIPTION_GRANT_FAMILY_SHARE: "yes",
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        "PRODUCT_TOKEN_MAP.pack: token amounts must be positive",
        "PRODUCT_TOKEN_MAP.pro.tokens: tokens must be a whole number",
        "PRODUCT_TOKEN_MAP.pro.trialTokens: trialTokens must be 0 or more",
        'PRODUCT_TOKEN_MAP.pro: unknown "expire": a subscription entry has tokens, expires, trialTokens, introTokens, rollover, creditGroup',
        'PRODUCT_TOKEN_MAP.max.expires: expires must be "period_end" or "never"',
        "PRODUCT_TOKEN_MAP.max.rollover.cap: rollover.cap must be positive",
        'PRODUCT_TOKEN_MAP.never.rollover: rollover needs "expires": "period_end" (tokens that never expire have nothing to roll over)',
        'PRODUCT_TOKEN_MAP.text: must be a whole number of tokens or a subscription object such as {"tokens": 1000}',
        "SUBSCRIPTION_ON_UPGRADE: must be expire or keep",
        "SUBSCRIPTION_GRANT_FAMILY_SHARE: must be true or false",
      ]),
    );
  });

  it("SUBSCRIPTION_* switches: family sharing, promotional grants, and keeping the old lot on an upgrade", () => {
    expect(
      loadConfig({
        SUBSCRIPTION_GRANT_FAMILY_SHARE: "true",
        SUBSCRIPTION_GRANT_PROMOTIONAL: "true",
        SUBSCRIPTION_ON_UPGRADE: "keep",
      }).revenuecat,
    ).toMatchObject({ grantFamilyShare: true, grantPromotional: true, onUpgrade: "keep" });
  });
});
