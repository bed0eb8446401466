import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import type { SQL } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import * as schema from "./schema.js";

export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;
/** What a transaction callback receives; it can run every query a Database can. */
export type Executor = Pick<Database, "select" | "insert" | "update" | "execute">;

export type Unlisten = () => Promise<void>;

export interface DatabaseHandle {
  readonly driver: "pglite" | "postgres";
  readonly db: Database;
  /** The server URL for the postgres driver (migrations take a connection of their own). */
  readonly url?: string;
  /**
   * Subscribes to a NOTIFY channel. `onConnected` runs each time the listening connection is
   * (re)established, so callers can re-sync whatever they may have missed while it was down.
   */
  listen(channel: string, onMessage: (payload: string) => void, onConnected?: () => void): Promise<Unlisten>;
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
}

export async function openDatabase(options: OpenDatabaseOptions): Promise<DatabaseHandle> {
  if (options.url) return openPostgres(options.url, options.poolSize ?? 20);
  let client = options.pglite;
  if (!client) {
    const dir = options.dataDir ? join(options.dataDir, "pglite") : undefined;
    if (dir) await mkdir(dir, { recursive: true });
    client = await PGlite.create(dir);
  }
  return openPglite(client);
}

function openPostgres(url: string, max: number): DatabaseHandle {
  const client = postgres(url, {
    max,
    onnotice: () => {},
    // Fail fast rather than queue forever when the server is gone.
    connect_timeout: 5,
    idle_timeout: 60,
    connection: { application_name: "token-ledger" },
  });
  const db = drizzlePostgres({ client, schema }) as unknown as Database;
  return {
    driver: "postgres",
    db,
    url,
    async listen(channel, onMessage, onConnected) {
      const { unlisten } = await client.listen(channel, onMessage, onConnected);
      return unlisten;
    },
    close: () => client.end({ timeout: 5 }),
  };
}

function openPglite(client: PGlite): DatabaseHandle {
  const db = drizzlePglite({ client, schema }) as unknown as Database;
  return {
    driver: "pglite",
    db,
    async listen(channel, onMessage, onConnected) {
      const unlisten = await client.listen(channel, onMessage);
      onConnected?.();
      return () => unlisten();
    },
    close: () => client.close(),
  };
}

/** Rows of a raw `db.execute(sql)`: postgres.js answers an array, PGlite an object with `rows`. */
export async function queryRows<T>(executor: Pick<Database, "execute">, query: SQL): Promise<T[]> {
  const result = (await executor.execute(query)) as unknown as T[] | { rows: T[] };
  return Array.isArray(result) ? result : result.rows;
}
