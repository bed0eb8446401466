import { gzipSync } from "node:zlib";
import { build } from "esbuild";
import { projectRoot } from "../../helpers/process.js";

/**
 * `npm run client:size`: what @token-ledger/client adds to an app bundle. Each entry is bundled the
 * way an app's bundler would (ESM, minified, for browsers and React Native), once with graphql-ws
 * inside and once with it left to the app, and the gzipped size printed.
 *
 * The budget was 5 kB until the core learned what only a browser shows (fetch called on the global
 * object, relative URLs resolved against the page), to reconnect at once when the page comes back
 * and to log its socket's drops: 4,946 bytes became about 5,360. It was 5.5 kB until the balance
 * carried what expires when, held and available tokens, and why it last changed (issue 18): about
 * 5,490 bytes became about 5,700. It was 5.75 kB until holds (issue 19: reserve, capture, release,
 * withHold and HoldError, and the hold mutations' documents): about 5,700 bytes became about 6,390.
 */
export const CORE_BUDGET_BYTES = 6.5 * 1024;

export async function bundledSize(entry: string, external: string[]): Promise<{ raw: number; gzip: number }> {
  const result = await build({
    entryPoints: [`${projectRoot}/src/client/${entry}`],
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    target: "es2020",
    write: false,
    external,
  });
  const code = (result.outputFiles[0] as { contents: Uint8Array }).contents;
  return { raw: code.length, gzip: gzipSync(code, { level: 9 }).length };
}

const kB = (bytes: number) => `${(bytes / 1024).toFixed(2)} kB`;

async function main(): Promise<void> {
  const rows = [
    ["core (index.ts), graphql-ws bundled", await bundledSize("index.ts", [])],
    ["core (index.ts), graphql-ws external", await bundledSize("index.ts", ["graphql-ws", "graphql-ws/*"])],
    ["react.ts alone (react and the core external)", await bundledSize("react.ts", ["react", "./*"])],
  ] as const;
  for (const [name, size] of rows) {
    console.log(
      `${name.padEnd(48)} ${kB(size.raw).padStart(9)} minified ${kB(size.gzip).padStart(9)} gzipped`,
    );
  }
  const core = rows[1][1].gzip;
  console.log(`core budget ${kB(CORE_BUDGET_BYTES)}: ${core <= CORE_BUDGET_BYTES ? "within" : "OVER"}`);
  if (core > CORE_BUDGET_BYTES) process.exitCode = 1;
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
