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
});
