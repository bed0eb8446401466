import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "./config.js";
import { projectRoot } from "./db/project.js";

/** What a started server runs with, in one log line: what an operator checks first after a deploy. */
export interface StartupSummary {
  readonly fields: Record<string, unknown>;
  readonly message: string;
}

export interface StartupFacts {
  /** The address and port the listener is bound to. */
  readonly address: string;
  readonly port: number;
  readonly driver: "pglite" | "postgres";
  /** "3 applied", "none pending", or "skipped (…)". */
  readonly migrations: string;
}

export function startupSummary(config: Config, facts: StartupFacts): StartupSummary {
  const wildcard = facts.address === "0.0.0.0" || facts.address === "::";
  const host = facts.address.includes(":") ? `[${facts.address}]` : facts.address;
  const listening = `http://${host}:${facts.port}${wildcard ? " (all interfaces)" : ""}`;
  const database =
    facts.driver === "pglite" ? `embedded PGlite in ${config.dataDir}` : postgresTarget(config);
  const fields = {
    address: facts.address,
    port: facts.port,
    version: packageVersion(),
    environment: config.nodeEnv,
    database,
    auth: authMode(config),
    products: Object.keys(config.revenuecat.productTokenMap).length,
    rateLimitStore: config.rateLimits.redisUrl ? "Redis" : "database",
    metricsProtected: config.metricsToken !== undefined,
    migrations: facts.migrations,
    drainMs: config.shutdownDrainMs,
  };
  const message =
    `token-ledger ${fields.version} listening on ${listening}; ${fields.environment}; ${database}; ` +
    `auth ${fields.auth}; ${fields.products} products mapped; rate limits in ${fields.rateLimitStore}; ` +
    `/metrics ${fields.metricsProtected ? "protected by METRICS_TOKEN" : "open"}; migrations ${fields.migrations}`;
  return { fields, message };
}

/** Where requests, LISTEN and migrations go: host, port and database name only, never the user or password. */
function postgresTarget(config: Config): string {
  const requests = `PostgreSQL ${place(config.databaseUrl)}`;
  const direct = config.databaseDirectUrl
    ? ` (LISTEN and migrations via ${place(config.databaseDirectUrl)})`
    : "";
  return `${requests}${direct}${config.databasePrepare ? "" : " without prepared statements"}`;
}

function place(text: string | undefined): string {
  try {
    const url = new URL(text ?? "");
    return `${url.hostname}${url.port ? `:${url.port}` : ""}${url.pathname}`;
  } catch {
    return "(unparsable URL)";
  }
}

function authMode(config: Config): string {
  const { jwt } = config;
  const checks = [
    jwt.issuer ? `issuer ${jwt.issuer}` : "any issuer",
    jwt.audience ? `audience ${jwt.audience}` : "any audience",
  ].join(", ");
  const modes = [jwt.secret ? "HS256 (JWT_SECRET)" : null, jwt.jwksUrl ? `JWKS ${jwt.jwksUrl}` : null];
  return `${modes.filter(Boolean).join(" + ") || "none"} (${checks})`;
}

let version: string | undefined;

function packageVersion(): string {
  version ??= (JSON.parse(readFileSync(join(projectRoot(), "package.json"), "utf8")) as { version: string })
    .version;
  return version;
}
