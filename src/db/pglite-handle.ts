import type { PGlite } from "@electric-sql/pglite";
import { drizzle } from "drizzle-orm/pglite";
import type { DataDirLock } from "./data-dir-lock.js";
import type { Database, DatabaseHandle } from "./database.js";
import * as schema from "./schema.js";

/** The embedded database, with drizzle on top; closing it releases its folder's lock. */
export function openPglite(client: PGlite, lock?: DataDirLock): DatabaseHandle {
  const db = drizzle({ client, schema }) as unknown as Database;
  return {
    driver: "pglite",
    db,
    async listen(channel, onMessage, onConnected) {
      const unlisten = await client.listen(channel, onMessage);
      onConnected?.();
      return () => unlisten();
    },
    query: async <T>(text: string, params: readonly unknown[]) =>
      (await client.query<T>(text, params as unknown[])).rows,
    advertise: async (url) => lock?.advertise(url),
    async close() {
      try {
        await client.close();
      } finally {
        await lock?.release();
      }
    },
  };
}
