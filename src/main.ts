import { createServer } from "node:net";
import { Worker } from "node:worker_threads";
import { type App, buildApp } from "./app.js";
import { signDevToken } from "./auth/jwt.js";
import { ConfigError, loadConfig } from "./config.js";
import { type DatabaseHandle, openDatabase } from "./db/client.js";
import { DataDirInUseError } from "./db/data-dir-lock.js";
import { MigrationError, migrate, pendingMigrations } from "./db/migrate.js";
import { withDevSecrets } from "./dev-secrets.js";
import { createLogger, exitWhenLogged } from "./logger.js";
import { startupSummary } from "./startup-summary.js";

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
    if (stopping) {
      logger.warn({ reason }, "second stop signal: exiting now");
      process.exit(1);
    }
    stopping = true;
    const drainMs = app ? config.shutdownDrainMs : 0;
    logger.info(
      { reason, drainMs },
      drainMs > 0
        ? `shutting down: /ready answers 503; serving ${drainMs} ms more, then finishing in-flight requests`
        : "shutting down: finishing in-flight requests",
    );
    exitAfter(drainMs + config.shutdownTimeoutMs + DATABASE_CLOSE_GRACE_MS, logger);
    try {
      await app?.drain(drainMs);
      await app?.stop(config.shutdownTimeoutMs);
      await database?.close();
      logger.info("stopped cleanly");
      await exitWhenLogged(logger, 0);
    } catch (error) {
      logger.error({ err: error }, "shutdown failed");
      await exitWhenLogged(logger, 1);
    }
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));

  // Refuse a busy port before opening anything: the embedded database is not opened for nothing.
  await assertPortFree(config.port, config.host);
  try {
    database = await openDatabase({
      url: config.databaseUrl,
      dataDir: config.dataDir,
      poolSize: config.databasePoolSize,
      directUrl: config.databaseDirectUrl,
      prepare: config.databasePrepare,
    });
  } catch (error) {
    if (!(error instanceof DataDirInUseError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
  const migrations = await migrateOnStart(database, config.migrateOnStart, logger);
  if (stopping) return;
  app = buildApp({ config, database, logger });
  const port = await app.start();
  await database.advertise(`http://${reachableHost(config.host)}:${port}`);
  const bound = app.server.address();
  const address = typeof bound === "object" && bound ? bound.address : config.host;
  const summary = startupSummary(config, { address, port, driver: database.driver, migrations });
  logger.info(summary.fields, summary.message);
  if (config.nodeEnv === "production" && database.driver === "pglite") {
    logger.warn(
      "NODE_ENV=production on the embedded PGlite database (ALLOW_EMBEDDED_IN_PRODUCTION=true): one process only, and DATA_DIR must be on a kept volume",
    );
  }
  if (config.nodeEnv === "production" && !config.metricsToken) {
    logger.warn("/metrics is open to anyone who can reach this port: set METRICS_TOKEN");
  }
  if (config.nodeEnv !== "production") await printDevBanner(config, port, generated, file);
}

/**
 * Applies pending migrations, or with MIGRATE_ON_START=false only says how many are pending (then
 * /ready answers 503 until `npm run migrate` has applied them). Returns what the summary line says.
 */
async function migrateOnStart(
  database: DatabaseHandle,
  enabled: boolean,
  logger: ReturnType<typeof createLogger>,
): Promise<string> {
  const pending = await pendingMigrations(database).catch(() => undefined);
  if (!enabled) {
    if (pending)
      logger.warn(
        { pending },
        `${pending} migrations pending: run npm run migrate; /ready answers 503 until then`,
      );
    return `skipped (MIGRATE_ON_START=false; ${pending ?? "unknown"} pending)`;
  }
  // Nothing pending: the migrator is not run at all, so a role that may only read and write data
  // starts on an up-to-date schema (drizzle's migrator always tries CREATE SCHEMA first).
  if (pending === 0) return "none pending";
  let applied: number;
  try {
    applied = await migrate(database);
  } catch (error) {
    if (!(error instanceof MigrationError)) throw error;
    process.stderr.write(`token-ledger failed to start: ${error.message}\n`);
    await database.close().catch(() => undefined);
    process.exit(1);
  }
  // Instances starting together all see migrations pending; one applies them, the others wait and find none.
  return applied > 0 ? `${applied} applied` : "none pending (applied by another process)";
}

/** An address a process on this machine can reach the server at. */
function reachableHost(host: string): string {
  if (host === "0.0.0.0" || host === "::" || host === "") return "127.0.0.1";
  return host.includes(":") ? `[${host}]` : host;
}

/** How long closing the database may take after in-flight requests have had their time. */
const DATABASE_CLOSE_GRACE_MS = 5_000;

/**
 * A stop always ends: past the deadline the process exits anyway and says so. A timer on this thread
 * covers a stop that waits on something that never answers (a database that stopped responding); a
 * watchdog thread covers this thread being stuck in synchronous work, where no timer of ours can run.
 */
function exitAfter(ms: number, logger: ReturnType<typeof createLogger>): void {
  setTimeout(() => {
    logger.error({ timeoutMs: ms }, `shutdown did not finish within ${ms} ms; exiting anyway`);
    void exitWhenLogged(logger, 1, 500);
  }, ms).unref();
  const watchdog = new Worker(
    `const { workerData } = require("node:worker_threads");
     setTimeout(() => {
       require("node:fs").writeSync(2, "shutdown did not finish within " + workerData.ms + " ms and the process does not respond; killing it\\n");
       process.kill(workerData.pid, "SIGKILL");
     }, workerData.ms);`,
    { eval: true, workerData: { ms: ms + 2_000, pid: process.pid } },
  );
  watchdog.unref();
}

/** Exits with a one-line reason when the port is taken, before anything is opened. */
async function assertPortFree(port: number, host: string): Promise<void> {
  if (port === 0) return;
  const probe = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once("error", reject);
      probe.listen(port, host, () => resolve());
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === "EADDRINUSE" ? "is in use" : `cannot be used (${code ?? "unknown error"})`;
    process.stderr.write(`Port ${port} ${reason}; set PORT\n`);
    process.exit(1);
  } finally {
    await new Promise<void>((resolve) => probe.close(() => resolve()));
  }
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
