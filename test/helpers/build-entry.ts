import { execFile } from "node:child_process";
import { readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { projectRoot } from "./process.js";

/**
 * Which build of the server the HTTP-facing tests talk to (TEST_SERVER_ENTRY):
 * - `sources` (default): the TypeScript sources, in the test's own process (buildApp), on either database;
 * - `bundle`: what `npm start` runs, the esbuild bundle made by src/scripts/start.mjs, as a child process;
 * - `dist`: what production runs, `npm run build` then `node dist/src/main.js`, as a child process.
 * A child process cannot share the test's embedded PGlite, so the built entries run on PostgreSQL
 * (TEST_DATABASE_URL): the child serves the test file's own database, which the test still reads.
 */
export type ServerEntry = "sources" | "bundle" | "dist";

export const serverEntry = parseEntry(process.env.TEST_SERVER_ENTRY);

function parseEntry(value: string | undefined): ServerEntry {
  if (value === undefined || value === "" || value === "sources") return "sources";
  if (value === "bundle" || value === "dist") return value;
  throw new Error(`TEST_SERVER_ENTRY must be sources, bundle or dist, not ${JSON.stringify(value)}`);
}

const run = promisify(execFile);
const DIST_STAMP = join(projectRoot, "dist", ".built-for-tests");
const BUNDLE = join(projectRoot, "node_modules", ".cache", "token-ledger", "main.mjs");

/**
 * Builds an entry when it is older than the sources: the bundle with start.mjs's own build (written
 * by renames, so a server starting meanwhile never reads half a file), dist with `npm run build`'s
 * tsc. The vitest global setup calls this once before the files run, so files that start an entry
 * (and the servers start.mjs would otherwise rebuild for) find it fresh.
 */
export async function ensureBuilt(entry: ServerEntry): Promise<void> {
  if (entry === "sources") return;
  const newest = await newestSource();
  if (entry === "bundle") {
    if ((await modified(BUNDLE)) > newest) return;
    // @ts-expect-error: the start script is plain JavaScript, without types.
    const { buildBundle } = (await import("../../src/scripts/start.mjs")) as { buildBundle(): Promise<void> };
    await buildBundle();
    return;
  }
  if ((await modified(DIST_STAMP)) > newest) return;
  const tsc = join(projectRoot, "node_modules", "typescript", "bin", "tsc");
  await run(process.execPath, [tsc, "-p", "tsconfig.build.json"], { cwd: projectRoot });
  await writeFile(DIST_STAMP, new Date().toISOString());
}

const modified = (path: string) =>
  stat(path).then(
    (s) => s.mtimeMs,
    () => 0,
  );

/** The newest modification time among the sources and the lock file (start.mjs's rule too). */
async function newestSource(): Promise<number> {
  const files = await readdir(join(projectRoot, "src"), { recursive: true });
  const paths = [
    ...files.map((file) => join(projectRoot, "src", file)),
    join(projectRoot, "package-lock.json"),
  ];
  return Math.max(...(await Promise.all(paths.map(modified))));
}
