import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import type * as schema from "./schema.js";

// The database's types, apart from client.ts which opens it: the two driver handles implement
// DatabaseHandle, and client.ts loads them lazily, so the folder reads one way.

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
