import { join } from "node:path";
import type { SQL } from "drizzle-orm";
import { lockDataDir } from "./data-dir-lock.js";
import type { Database, DatabaseHandle } from "./database.js";

export type { Database, DatabaseHandle, Executor, Unlisten } from "./database.js";

export interface OpenDatabaseOptions {
  /** A postgres:// URL; without one the embedded PGlite database is used. */
  readonly url?: string | undefined;
  /** Where PGlite keeps its files; unset means in memory. */
  readonly dataDir?: string | undefined;
  readonly poolSize?: number | undefined;
  /** Where LISTEN and migrations connect when `url` is a transaction-mode pooler. */
  readonly directUrl?: string | undefined;
  /** Named prepared statements (default on); off for poolers that cannot carry them. */
  readonly prepare?: boolean | undefined;
}

/**
 * Opens PostgreSQL when given a URL, else the embedded PGlite database. An embedded database in a
 * folder is opened by one process only: this takes the folder's lock first and throws
 * DataDirInUseError (naming the holder) when another process has it.
 */
export async function openDatabase(options: OpenDatabaseOptions): Promise<DatabaseHandle> {
  // Each driver is loaded only when it is used: a server on PostgreSQL never loads PGlite's
  // WebAssembly, and an embedded one never loads postgres.js.
  if (options.url)
    return (await import("./postgres-handle.js")).openPostgres(options.url, options.poolSize ?? 20, {
      directUrl: options.directUrl,
      prepare: options.prepare,
    });
  const { openPglite } = await import("./pglite-handle.js");
  if (!options.dataDir) return openPglite(await (await import("@electric-sql/pglite")).PGlite.create());
  const lock = await lockDataDir(options.dataDir, lockLost);
  try {
    const { openEmbedded } = await import("./embedded.js");
    return openPglite(await openEmbedded(join(options.dataDir, "pglite")), lock);
  } catch (error) {
    await lock.release();
    throw error;
  }
}

/** Another process may now open the folder: writing on would split the database, so stop at once. */
function lockLost(error: Error): void {
  process.stderr.write(
    `The lock on DATA_DIR was lost (${error.message}); stopping to protect the database.\n`,
  );
  process.exit(1);
}

/** Rows of a raw `db.execute(sql)`: postgres.js answers an array, PGlite an object with `rows`. */
export async function queryRows<T>(executor: Pick<Database, "execute">, query: SQL): Promise<T[]> {
  const result = (await executor.execute(query)) as unknown as T[] | { rows: T[] };
  return Array.isArray(result) ? result : result.rows;
}
