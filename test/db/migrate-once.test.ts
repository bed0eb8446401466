import { sql } from "drizzle-orm";
import { afterAll, describe, expect, it } from "vitest";
import { openDatabase, queryRows } from "../../src/db/client.js";
import { migrate } from "../../src/db/migrate.js";
import { driverName, openTestDatabase, type TestDatabase } from "../helpers/database.js";

const MIGRATIONS = (
  (await import("../../drizzle/meta/_journal.json", { with: { type: "json" } })).default as {
    entries: unknown[];
  }
).entries.length;

const databases: TestDatabase[] = [];
afterAll(async () => {
  for (const database of databases) await database.close();
});

describe(`migrations on ${driverName}`, () => {
  it("say how many they applied; a second run applies none", async () => {
    const database = await openTestDatabase({ migrated: false });
    databases.push(database);
    expect(await migrate(database.handle)).toBe(MIGRATIONS);
    expect(await migrate(database.handle)).toBe(0);
  });

  it.runIf(driverName === "postgres")(
    "five migrators racing on one database apply each migration once (a transaction-scoped lock)",
    async () => {
      const database = await openTestDatabase({ migrated: false });
      databases.push(database);
      const handles = await Promise.all(
        [1, 2, 3, 4, 5].map(() => openDatabase({ url: database.url, poolSize: 1 })),
      );
      try {
        const applied = await Promise.all(handles.map((handle) => migrate(handle)));
        expect(applied.reduce((sum, count) => sum + count, 0)).toBe(MIGRATIONS);
        expect(applied.filter((count) => count > 0)).toEqual([MIGRATIONS]);
        const [row] = await queryRows<{ rows: number }>(
          database.handle.db,
          sql`SELECT count(*)::int AS rows FROM drizzle.__drizzle_migrations`,
        );
        expect(row?.rows).toBe(MIGRATIONS);
        // No advisory lock outlives its migration (a session lock through a pooler would).
        const [locks] = await queryRows<{ held: number }>(
          database.handle.db,
          sql`SELECT count(*)::int AS held FROM pg_locks
              WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
        );
        expect(locks?.held).toBe(0);
      } finally {
        await Promise.all(handles.map((handle) => handle.close()));
      }
    },
  );
});
