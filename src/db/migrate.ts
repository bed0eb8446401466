import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import { drizzle } from "drizzle-orm/postgres-js";
import { migrate as migratePostgres } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import { type DatabaseHandle, queryRows } from "./client.js";

/** An arbitrary constant: instances starting together take turns applying migrations. */
const MIGRATION_LOCK_ID = 72_201_801;

/** The drizzle/ folder at the project root, found from here whether running from src or dist. */
export function migrationsFolder(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 6; depth += 1) {
    const candidate = join(dir, "drizzle");
    if (existsSync(join(candidate, "meta", "_journal.json"))) return candidate;
    dir = dirname(dir);
  }
  throw new Error("drizzle/ migrations folder not found");
}

/** Applies every pending migration in drizzle/; the same folder serves both drivers. */
export async function migrate(handle: DatabaseHandle): Promise<void> {
  const migrationsFolderPath = migrationsFolder();
  if (handle.driver === "pglite") {
    // biome-ignore lint/suspicious/noExplicitAny: each migrator wants its own driver's database type.
    await migratePglite(handle.db as any, { migrationsFolder: migrationsFolderPath });
    return;
  }
  // One dedicated connection holds a session advisory lock, so instances starting together take
  // turns; drizzle's migrator then sees what the first one applied and does nothing.
  const client = postgres(handle.url as string, { max: 1, onnotice: () => {} });
  try {
    await client`SELECT pg_advisory_lock(${MIGRATION_LOCK_ID})`;
    await migratePostgres(drizzle({ client }), { migrationsFolder: migrationsFolderPath });
    await client`SELECT pg_advisory_unlock(${MIGRATION_LOCK_ID})`;
  } finally {
    await client.end({ timeout: 5 });
  }
}

/** True when the database answers and has every migration in drizzle/ applied. */
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

export async function isMigrated(handle: DatabaseHandle): Promise<boolean> {
  const [row] = await queryRows<{ applied: number | string }>(
    handle.db,
    sql`SELECT count(*) AS applied FROM drizzle.__drizzle_migrations`,
  );
  return Number(row?.applied) >= expectedMigrations();
}
