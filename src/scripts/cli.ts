import { parseArgs } from "node:util";
import { type Config, ConfigError, loadConfig } from "../config.js";
import { type DatabaseHandle, openDatabase } from "../db/client.js";
import { migrate, pendingMigrations } from "../db/migrate.js";

/**
 * What every maintenance command shares: `--help` that prints the usage and does nothing else, a
 * usage error for anything unknown, the configuration the server would use, and one line saying
 * why a command failed (with the database's own reason, not only drizzle's statement).
 */

export interface CommandSpec {
  readonly name: string;
  /** The usage text printed by --help and after a usage error. */
  readonly usage: string;
  readonly options: Record<string, { readonly type: "boolean" | "string" }>;
  /** How many positional arguments the command takes. */
  readonly positionals?: { readonly min: number; readonly max: number };
}

export interface ParsedCommand {
  readonly values: Readonly<Record<string, string | boolean | undefined>>;
  readonly positionals: readonly string[];
}

export function parseCommand(spec: CommandSpec, argv = process.argv.slice(2)): ParsedCommand {
  let parsed: ParsedCommand;
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...spec.options, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    }) as ParsedCommand;
  } catch (error) {
    usageError(spec, error instanceof Error ? error.message : String(error));
  }
  if (parsed.values.help) {
    process.stdout.write(`${spec.usage.trim()}\n`);
    process.exit(0);
  }
  const { min, max } = spec.positionals ?? { min: 0, max: 0 };
  if (parsed.positionals.length < min || parsed.positionals.length > max) {
    usageError(spec, parsed.positionals.length < min ? "missing argument" : "too many arguments");
  }
  return parsed;
}

function usageError(spec: { name: string; usage: string }, message: string): never {
  process.stderr.write(`${spec.name}: ${message}\n\n${spec.usage.trim()}\n`);
  process.exit(2);
}

/** The server's configuration, or the list of problems and exit 1. */
export function commandConfig(name: string): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${name}: ${error.message}\n`);
    process.exit(1);
  }
}

/**
 * Opens the configured database for a command. Pending migrations are applied first when the server
 * would apply them (MIGRATE_ON_START); otherwise the command refuses, since it may need them.
 */
export async function openCommandDatabase(config: Config): Promise<DatabaseHandle> {
  const database = await openDatabase({
    url: config.databaseUrl,
    directUrl: config.databaseDirectUrl,
    prepare: config.databasePrepare,
    dataDir: config.dataDir,
    poolSize: 2,
  });
  try {
    const pending = await pendingMigrations(database);
    if (pending > 0 && config.migrateOnStart) await migrate(database);
    else if (pending > 0) throw new Error(`${pending} migrations are pending: run npm run migrate first`);
    return database;
  } catch (error) {
    await database.close();
    throw error;
  }
}

/** Runs a command's main; a failure is one line on stderr and exit 1. */
export function runCommand(name: string, main: () => Promise<void>): void {
  main().catch((error: unknown) => {
    process.stderr.write(`${name} failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
