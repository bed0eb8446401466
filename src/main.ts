import { type App, buildApp } from "./app.js";
import { signDevToken } from "./auth/jwt.js";
import { ConfigError, loadConfig } from "./config.js";
import { type DatabaseHandle, openDatabase } from "./db/client.js";
import { migrate } from "./db/migrate.js";
import { withDevSecrets } from "./dev-secrets.js";
import { createLogger } from "./logger.js";

async function main(): Promise<void> {
  let loaded: ReturnType<typeof loadConfig>;
  try {
    loaded = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  const { config, generated, file } = await withDevSecrets(loaded);
  const logger = createLogger(config.logLevel);
  let database: DatabaseHandle | undefined;
  let app: App | undefined;

  // Signals are handled from the first moment: a stop during start-up still closes the database.
  let stopping = false;
  const shutdown = async (reason: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ reason }, "shutting down: finishing in-flight requests");
    try {
      await app?.stop(config.shutdownTimeoutMs);
      await database?.close();
      logger.info("stopped cleanly");
      process.exit(0);
    } catch (error) {
      logger.error({ err: error }, "shutdown failed");
      process.exit(1);
    }
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
  // A wrapper that does not pass signals on (npm, a shell) may exit and leave us behind: when our
  // parent changes, it is gone, and we stop as if told to.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) void shutdown("parent exited");
  }, 500).unref();

  database = await openDatabase({
    url: config.databaseUrl,
    dataDir: config.dataDir,
    poolSize: config.databasePoolSize,
  });
  await migrate(database);
  if (stopping) return;
  app = buildApp({ config, database, logger });
  const port = await app.start();
  logger.info(
    { port, database: database.driver, environment: config.nodeEnv },
    `token-ledger listening on http://localhost:${port} (${database.driver === "pglite" ? `embedded PGlite in ${config.dataDir}` : "PostgreSQL"})`,
  );
  if (config.nodeEnv === "production" && database.driver === "pglite") {
    logger.warn(
      "NODE_ENV=production on the embedded PGlite database: one process only; set DATABASE_URL to scale out",
    );
  }
  if (config.nodeEnv !== "production") await printDevBanner(config, port, generated, file);
}

/**
 * Development only: everything a newcomer needs to make a first call. Printed to stdout, not to the
 * log stream, so secrets never reach a log pipeline.
 */
async function printDevBanner(
  config: Awaited<ReturnType<typeof withDevSecrets>>["config"],
  port: number,
  generated: readonly string[],
  file: string,
): Promise<void> {
  const lines = [`\n  GraphiQL:        http://localhost:${port}/graphql`];
  if (config.jwt.secret) {
    const token = await signDevToken({
      secret: config.jwt.secret,
      userId: "dev-user",
      issuer: config.jwt.issuer,
      audience: config.jwt.audience,
    });
    lines.push(`  Dev token (user "dev-user", 24h):\n    Authorization: Bearer ${token}`);
  }
  if (generated.length > 0) {
    lines.push(`  Generated ${generated.join(" and ")} for development; kept in ${file}.`);
    lines.push(
      "  Set them in the environment for production (NODE_ENV=production refuses to start without).",
    );
  }
  if (generated.includes("REVENUECAT_WEBHOOK_SECRET")) {
    lines.push(`  RevenueCat webhook Authorization header: Bearer ${config.revenuecat.webhookSecret}`);
  }
  lines.push("  More tokens: npm run token -- <userId> [--admin]\n");
  process.stdout.write(`${lines.join("\n")}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(
    `token-ledger failed to start: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
