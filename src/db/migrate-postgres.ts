import { readMigrationFiles } from "drizzle-orm/migrator";

/** An arbitrary constant: instances starting together take turns applying migrations. */
const MIGRATION_LOCK_ID = 72_201_801;

/**
 * Applies drizzle/'s pending migrations in one transaction that first takes a transaction-scoped
 * advisory lock, and returns how many it applied. A transaction stays on one server connection even
 * through a transaction-mode pooler, so the lock holds there too, and it ends with the transaction:
 * no lock is left behind on a pooled connection (a session lock taken through PgBouncer is released
 * on whichever connection the unlock lands on, which is usually another). Instances starting
 * together wait on the lock; the later ones then read what the first committed and apply nothing.
 * The bookkeeping table is drizzle's own, so `drizzle-kit` and earlier deployments agree with it.
 */
export async function migratePostgres(url: string, migrationsFolder: string): Promise<number> {
  const { default: postgres } = await import("postgres");
  const client = postgres(url, {
    max: 1,
    prepare: false,
    onnotice: () => {},
    connection: { application_name: "token-ledger-migrate" },
  });
  try {
    return await client.begin(async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_ID})`;
      await tx.unsafe("CREATE SCHEMA IF NOT EXISTS drizzle");
      await tx.unsafe(
        "CREATE TABLE IF NOT EXISTS drizzle.__drizzle_migrations (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint)",
      );
      const [last] = await tx<{ created_at: string }[]>`
        SELECT created_at FROM drizzle.__drizzle_migrations ORDER BY created_at DESC LIMIT 1`;
      let applied = 0;
      for (const migration of readMigrationFiles({ migrationsFolder })) {
        if (last && Number(last.created_at) >= migration.folderMillis) continue;
        for (const statement of migration.sql) await tx.unsafe(statement);
        await tx`INSERT INTO drizzle.__drizzle_migrations (hash, created_at)
          VALUES (${migration.hash}, ${migration.folderMillis})`;
        applied += 1;
      }
      return applied;
    });
  } finally {
    await client.end({ timeout: 5 });
  }
}
