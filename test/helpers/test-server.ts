import { clientOf, startTestApp, type TestApp, useStarted } from "./app.js";
import { ensureBuilt, type ServerEntry, serverEntry } from "./build-entry.js";
import { openTestDatabase, type TestDatabase } from "./database.js";
import { type ServerProcess, startServerProcess } from "./process.js";

export { type ServerEntry, serverEntry };

/** The command that starts each entry as a process (the sources through tsx's loader). */
export const ENTRY_COMMANDS: Readonly<Record<ServerEntry, readonly string[]>> = {
  sources: [process.execPath, "--import", "tsx", "src/main.ts"],
  bundle: [process.execPath, "--enable-source-maps", "src/scripts/start.mjs"],
  dist: [process.execPath, "--enable-source-maps", "dist/src/main.js"],
};

/** The log lines a server printed, parsed: the same reading as the in-process LogCapture. */
export interface Logs {
  readonly lines: readonly Record<string, unknown>[];
  readonly raw: readonly string[];
  messages(): string[];
}

/** A server under test, whichever entry runs it; tests that need the in-process App use startTestApp. */
export type TestServer = Omit<TestApp, "app" | "logs"> & {
  readonly entry: ServerEntry;
  readonly logs: Logs;
  /** The child process, for the built entries. */
  readonly process: ServerProcess | undefined;
};

/** Starts the chosen entry (TEST_SERVER_ENTRY by default) on `existing` or a new test database. */
export async function startTestServer(
  env: Record<string, string> = {},
  existing?: TestDatabase,
  entry: ServerEntry = serverEntry,
): Promise<TestServer> {
  if (entry === "sources") {
    return { ...(await startTestApp(env, existing)), entry, process: undefined };
  }
  const db = existing ?? (await openTestDatabase());
  if (!db.url) {
    if (!existing) await db.close();
    throw new Error(`TEST_SERVER_ENTRY=${entry} runs on PostgreSQL: set TEST_DATABASE_URL as well`);
  }
  await ensureBuilt(entry);
  const server = await startServerProcess({ DATABASE_URL: db.url, ...env }, [...ENTRY_COMMANDS[entry]]);
  const url = server.url;
  return {
    entry,
    db,
    url,
    process: server,
    logs: processLogs(server.stdout),
    ...clientOf(url),
    async close() {
      await server.stop();
      if (!existing) await db.close();
    },
  };
}

/** startTestServer before the file's tests, closed after them (see useStarted). */
export function useTestServer(env: Record<string, string> = {}): TestServer {
  return useStarted(`the test server (${serverEntry})`, () => startTestServer(env));
}

/** Complete JSON lines of a process's stdout, read afresh each time. */
function processLogs(stdout: () => string): Logs {
  const raw = () =>
    stdout()
      .split("\n")
      .slice(0, -1)
      .filter((line) => line.startsWith("{"));
  return {
    get raw() {
      return raw();
    },
    get lines() {
      return raw().map((line) => JSON.parse(line) as Record<string, unknown>);
    },
    messages() {
      return this.lines.map((line) => String(line.msg));
    },
  };
}
