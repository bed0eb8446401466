import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { type DatabaseHandle, openDatabase } from "../../src/db/client.js";
import { migrate } from "../../src/db/migrate.js";
import { useStarted } from "./fixture.js";

/**
 * Tests run on PGlite by default and on a real PostgreSQL server when TEST_DATABASE_URL names one
 * (an admin URL: each test file creates a database of its own there and drops it afterwards).
 */
export const serverUrl = process.env.TEST_DATABASE_URL;
export const driverName = serverUrl ? "postgres" : "pglite";

export interface TestDatabase {
  readonly handle: DatabaseHandle;
  /** The URL of this file's own database (postgres only), for a second process to share it. */
  readonly url: string | undefined;
  close(): Promise<void>;
}

export async function openTestDatabase(options: { migrated?: boolean } = {}): Promise<TestDatabase> {
  const migrated = options.migrated ?? true;
  if (!serverUrl) {
    // A folder of its own, started from the embedded template (seconds faster than a new PGlite).
    const dataDir = await mkdtemp(join(tmpdir(), "tl-test-"));
    const handle = await openDatabase(migrated ? { dataDir } : {});
    if (migrated) await migrate(handle);
    return {
      handle,
      url: undefined,
      async close() {
        await handle.close();
        await rm(dataDir, { recursive: true, force: true });
      },
    };
  }
  const name = `tl_test_${randomBytes(6).toString("hex")}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const handle = await openDatabase({ url: url.toString(), poolSize: 40 });
  if (migrated) await migrate(handle);
  return {
    handle,
    url: url.toString(),
    async close() {
      await handle.close();
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}

/**
 * Opens a database of the file's own before its tests and drops it after them. Like useTestApp, it
 * returns the database itself (forwarding to it once beforeAll has opened it); `current()` answers
 * the same, for the files written with it (and may be passed on before the database is open).
 */
export function useTestDatabase(): TestDatabase & { current(): TestDatabase } {
  const database = useStarted("the test database", () => openTestDatabase());
  const current = () => database;
  return new Proxy(database as TestDatabase & { current(): TestDatabase }, {
    get: (target, key) => (key === "current" ? current : Reflect.get(target, key)),
  });
}
