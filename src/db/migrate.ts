import { readFileSync } from "node:fs";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { type DatabaseHandle, queryRows } from "./client.js";
import { pgErrorOf } from "./errors.js";
import { migrationsFolder } from "./project.js";

/** Migrations could not be applied; the message carries the database's own reason. */
export class MigrationError extends Error {
  constructor(cause: unknown) {
    super(migrationFailure(cause), { cause });
    this.name = "MigrationError";
  }
}

/**
 * Applies every pending migration in drizzle/ and returns how many it applied (none when another
 * instance applied them first); the same folder serves both drivers. A failure is a MigrationError
 * saying why (drizzle's own error names only the statement; the reason is its cause).
 */
export async function migrate(handle: DatabaseHandle): Promise<number> {
  try {
    return await applyMigrations(handle);
  } catch (error) {
    throw new MigrationError(error);
  }
}

/** Privilege errors: insufficient_privilege (42501) and must-be-owner failures. */
const PRIVILEGE_CODES = new Set(["42501"]);

function migrationFailure(error: unknown): string {
  const reasons: string[] = [];
  for (let current = error, depth = 0; current instanceof Error && depth < 6; depth += 1) {
    // drizzle's "Failed query: <statement>" adds the statement, which the reason makes plain.
    const first = current.message.split("\n")[0] ?? "";
    if (first && !reasons.includes(first)) reasons.push(first);
    current = current.cause;
  }
  const code = pgErrorOf(error)?.code;
  // The deepest reason first (the database's own words), then what it happened in.
  const [reason, ...context] = reasons.reverse();
  const text = `migrations could not be applied: ${reason ?? String(error)}${context.length > 0 ? ` (${context.join("; ")})` : ""}`;
  if (code && PRIVILEGE_CODES.has(code)) {
    return (
      `${text}. The role in DATABASE_URL may not change the schema: apply migrations with a role that ` +
      "owns it (DATABASE_URL=<owner URL> npm run migrate), and start the server with " +
      "MIGRATE_ON_START=false (docs/operations.md, database privileges)"
    );
  }
  return code ? `${text} [SQLSTATE ${code}]` : text;
}

async function applyMigrations(handle: DatabaseHandle): Promise<number> {
  const migrationsFolderPath = migrationsFolder();
  // Each driver's migrator is loaded only when it is used (see openDatabase).
  if (handle.driver === "pglite") {
    // One process owns an embedded database, so nothing can apply migrations beside this one.
    const pending = await pendingMigrations(handle);
    const { migrate: migratePglite } = await import("drizzle-orm/pglite/migrator");
    // biome-ignore lint/suspicious/noExplicitAny: each migrator wants its own driver's database type.
    await migratePglite(handle.db as any, { migrationsFolder: migrationsFolderPath });
    return pending;
  }
  // The direct URL: DDL through a transaction-mode pooler would also leave its pooled connections
  // with prepared plans of the old schema.
  const { migratePostgres } = await import("./migrate-postgres.js");
  return migratePostgres(handle.directUrl ?? (handle.url as string), migrationsFolderPath);
}

let migrationCount: number | undefined;

/** How many migrations drizzle/ holds; read once, since /ready asks on every probe. */
function expectedMigrations(): number {
  migrationCount ??= (
    JSON.parse(readFileSync(join(migrationsFolder(), "meta", "_journal.json"), "utf8")) as {
      entries: unknown[];
    }
  ).entries.length;
  return migrationCount;
}

/** How many migrations in drizzle/ are not applied yet (all of them on a new database). */
export async function pendingMigrations(handle: DatabaseHandle): Promise<number> {
  try {
    const [row] = await queryRows<{ applied: number | string }>(
      handle.db,
      sql`SELECT count(*) AS applied FROM drizzle.__drizzle_migrations`,
    );
    return Math.max(0, expectedMigrations() - Number(row?.applied ?? 0));
  } catch (error) {
    // No migrations table yet (undefined_table, invalid_schema_name): nothing is applied.
    const code = pgErrorOf(error)?.code;
    if (code === "42P01" || code === "3F000") return expectedMigrations();
    throw error;
  }
}

/** True when the database answers and has every migration in drizzle/ applied. */
export async function isMigrated(handle: DatabaseHandle): Promise<boolean> {
  const [row] = await queryRows<{ applied: number | string }>(
    handle.db,
    sql`SELECT count(*) AS applied FROM drizzle.__drizzle_migrations`,
  );
  return Number(row?.applied) >= expectedMigrations();
}
