import { readFileSync } from "node:fs";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { type DatabaseHandle, queryRows } from "./client.js";
import { migrationsFolder } from "./project.js";

/** An arbitrary constant: instances starting together take turns applying migrations. */
const MIGRATION_LOCK_ID = 72_201_801;

/** Applies every pending migration in drizzle/; the same folder serves both drivers. */
export async function migrate(handle: DatabaseHandle): Promise<void> {
  const migrationsFolderPath = migrationsFolder();
  // Each driver's migrator is loaded only when it is used (see openDatabase).
  if (handle.driver === "pglite") {
    const { migrate: migratePglite } = await import("drizzle-orm/pglite/migrator");
    // biome-ignore lint/suspicious/noExplicitAny: each migrator wants its own driver's database type.
    await migratePglite(handle.db as any, { migrationsFolder: migrationsFolderPath });
    return;
  }
  const [{ default: postgres }, { drizzle }, { migrate: migratePostgres }] = await Promise.all([
    import("postgres"),
    import("drizzle-orm/postgres-js"),
    import("drizzle-orm/postgres-js/migrator"),
  ]);
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
