import { drizzle } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import type { Database, DatabaseHandle } from "./database.js";
import * as schema from "./schema.js";

/** A pool of postgres.js connections, with drizzle on top and the hot statements prepared. */
export function openPostgres(url: string, max: number): DatabaseHandle {
  const client = postgres(url, {
    max,
    onnotice: () => {},
    // Fail fast rather than queue forever when the server is gone.
    connect_timeout: 5,
    idle_timeout: 60,
    connection: { application_name: "token-ledger" },
  });
  const db = drizzle({ client, schema }) as unknown as Database;
  return {
    driver: "postgres",
    db,
    url,
    async listen(channel, onMessage, onConnected) {
      const { unlisten } = await client.listen(channel, onMessage, onConnected);
      return unlisten;
    },
    query: async <T>(text: string, params: readonly unknown[]) =>
      (await client.unsafe(text, params as never[], { prepare: true })) as unknown as T[],
    advertise: async () => undefined,
    close: () => client.end({ timeout: 5 }),
  };
}
