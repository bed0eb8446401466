import { join } from "node:path";
import type { PGlite } from "@electric-sql/pglite";
import type { SQL } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { lockDataDir } from "./data-dir-lock.js";
import type * as schema from "./schema.js";

export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;
/** What a transaction callback receives; it can run every query a Database can. */
export type Executor = Pick<Database, "select" | "insert" | "update" | "execute">;

export type Unlisten = () => Promise<void>;

export interface DatabaseHandle {
  readonly driver: "pglite" | "postgres";
  readonly db: Database;
  /** The server URL requests go through (postgres driver), perhaps a transaction-mode pooler. */
  readonly url?: string;
  /**
   * The URL that reaches PostgreSQL itself (DATABASE_DIRECT_URL, else `url`): LISTEN and migrations
   * need a session of their own, which a transaction-mode pooler does not keep.
   */
  readonly directUrl?: string;
  /**
   * Subscribes to a NOTIFY channel. `onConnected` runs each time the listening connection is
   * (re)established, so callers can re-sync whatever they may have missed while it was down.
   */
  listen(channel: string, onMessage: (payload: string) => void, onConnected?: () => void): Promise<Unlisten>;
  /**
   * Runs one hot statement as a prepared statement straight through the driver (drizzle's own
   * queries are sent unprepared: a describe and a bind each time). Rows come back as the driver
   * gives them: snake_case columns, timestamps as strings on postgres.js.
   */
  query<T>(text: string, params: readonly unknown[]): Promise<T[]>;
  /** Records where a server serving this database listens (embedded database only; see data-dir-lock). */
  advertise(url: string): Promise<void>;
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  /** A postgres:// URL; without one the embedded PGlite database is used. */
  readonly url?: string | undefined;
  /** Where PGlite keeps its files; unset means in memory. */
  readonly dataDir?: string | undefined;
  /** An already open PGlite instance (tests clone a migrated one). */
  readonly pglite?: PGlite | undefined;
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
  if (options.pglite) return openPglite(options.pglite);
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
