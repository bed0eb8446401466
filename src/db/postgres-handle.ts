import { drizzle } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import type { Database, DatabaseHandle } from "./database.js";
import * as schema from "./schema.js";

/** How the pool reaches PostgreSQL when it goes through a pooler (docs/scaling.md). */
export interface PoolerOptions {
  /** LISTEN connects here instead of through the pool's URL. */
  readonly directUrl?: string | undefined;
  /** False for transaction-mode poolers without prepared-statement support (PgBouncer < 1.21). */
  readonly prepare?: boolean | undefined;
}

/** A pool of postgres.js connections, with drizzle on top and the hot statements prepared. */
export function openPostgres(url: string, max: number, pooler: PoolerOptions = {}): DatabaseHandle {
  const prepare = pooler.prepare ?? true;
  const client = postgres(url, {
    max,
    prepare,
    onnotice: () => {},
    // Fail fast rather than queue forever when the server is gone.
    connect_timeout: 5,
    idle_timeout: 60,
    connection: { application_name: "token-ledger" },
  });
  // postgres.js opens LISTEN's dedicated connection from its client's options, so a listener meant to
  // bypass the pooler needs a client of its own on the direct URL; it opens no other connection.
  const listener = pooler.directUrl
    ? postgres(pooler.directUrl, {
        max: 1,
        onnotice: () => {},
        connect_timeout: 5,
        connection: { application_name: "token-ledger-listen" },
      })
    : client;
  const db = drizzle({ client, schema }) as unknown as Database;
  return {
    driver: "postgres",
    db,
    url,
    directUrl: pooler.directUrl ?? url,
    async listen(channel, onMessage, onConnected) {
      const { unlisten } = await listener.listen(channel, onMessage, onConnected);
      return unlisten;
    },
    query: async <T>(text: string, params: readonly unknown[]) =>
      (await client.unsafe(text, params as never[], { prepare })) as unknown as T[],
    advertise: async () => undefined,
    async close() {
      await Promise.all([
        client.end({ timeout: 5 }),
        listener === client ? undefined : listener.end({ timeout: 5 }),
      ]);
    },
  };
}
