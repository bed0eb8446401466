import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type AuditResult, serverAudits } from "graphql-http";
import { describe, expect, it } from "vitest";
import { signDevToken } from "../../src/auth/jwt.js";
import { JWT_SECRET, newUserId } from "../helpers/app.js";
import { ensureBuilt } from "../helpers/build-entry.js";
import { driverName, serverUrl } from "../helpers/database.js";
import { startServerProcess } from "../helpers/process.js";
import { ENTRY_COMMANDS, type ServerEntry, startTestServer } from "../helpers/test-server.js";

/** A running entry: on PostgreSQL through the test-server factory; on PGlite a child gets a folder of its own. */
async function startEntry(entry: ServerEntry): Promise<{ url: string; close(): Promise<void> }> {
  if (entry === "sources" || serverUrl) return startTestServer({}, undefined, entry);
  await ensureBuilt(entry);
  const dataDir = await mkdtemp(join(tmpdir(), `tl-audit-${entry}-`));
  const server = await startServerProcess({ DATA_DIR: dataDir }, [...ENTRY_COMMANDS[entry]]);
  return {
    url: server.url,
    async close() {
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * graphql-http's audit suite (by the GraphQL-over-HTTP spec's editor) against each build of the
 * server, as a signed-in user: the npm start bundle once answered four of its audits with a masked
 * 500 (two copies of graphql), which the sources never showed.
 */
describe(`GraphQL over HTTP audits on ${driverName}`, () => {
  it.each(["sources", "bundle", "dist"] as const)(
    "%s: 0 warnings, 0 errors",
    async (entry) => {
      const server = await startEntry(entry);
      try {
        const token = await signDevToken({ secret: JWT_SECRET, userId: newUserId(), expiresIn: "1h" });
        const fetchFn = (input: RequestInfo | URL, init: RequestInit = {}) => {
          const headers = new Headers(init.headers);
          headers.set("authorization", `Bearer ${token}`);
          return fetch(input, { ...init, headers });
        };
        const results: AuditResult[] = [];
        for (const audit of serverAudits({ url: `${server.url}/graphql`, fetchFn }))
          results.push(await audit.fn());
        const count = (status: string) => results.filter((result) => result.status === status).length;
        const counts = {
          ok: count("ok"),
          notice: count("notice"),
          warn: count("warn"),
          error: count("error"),
        };
        console.log(`graphql-http audits against ${entry}: ${JSON.stringify(counts)} of ${results.length}`);
        const failed = results.flatMap((result) =>
          result.status === "warn" || result.status === "error" ? [`${result.name}: ${result.reason}`] : [],
        );
        expect(failed).toEqual([]);
        expect(counts.ok).toBeGreaterThan(40);
      } finally {
        await server.close();
      }
    },
    300_000,
  );
});
