// The console's browser app as one minified file: built by `npm run build` (beside the compiled
// server), by `npm start` (beside its bundle), and on first request when the server runs from its
// sources (tsx, tests). Plain JavaScript so that start.mjs and the build run it without a loader.
import { writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

/** The file name the server looks for beside its own module. */
export const CONSOLE_SCRIPT = "console-app.js";

/** Builds the app; writes it to `outfile` when given, and returns its text either way. */
export async function buildConsoleScript(outfile) {
  const { build } = await import("esbuild");
  const result = await build({
    entryPoints: [join(here, "main.ts")],
    bundle: true,
    minify: true,
    format: "esm",
    target: "es2020",
    platform: "browser",
    legalComments: "none",
    write: false,
    logLevel: "warning",
  });
  const text = result.outputFiles[0].text;
  if (outfile) await writeFile(outfile, text);
  return text;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const outfile = process.argv[2];
  if (!outfile) throw new Error("usage: node src/console/web/bundle.mjs <outfile>");
  await buildConsoleScript(outfile);
}
