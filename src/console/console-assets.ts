import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { gzipSync } from "node:zlib";
import { CONSOLE_STYLE } from "./console-style.js";

/** The name of the built app beside this module (written by `npm run build` and `npm start`). */
const SCRIPT_FILE = "console-app.js";

export interface Asset {
  readonly body: Buffer;
  readonly gzip: Buffer;
  readonly etag: string;
  readonly contentType: string;
}

export interface ConsoleAssets {
  readonly script: Asset;
  readonly style: Asset;
}

function asset(text: string, contentType: string): Asset {
  const body = Buffer.from(text);
  const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`;
  return { body, gzip: gzipSync(body, { level: 9 }), etag, contentType };
}

/**
 * The console's script: the one built beside the running server, or, when the server runs from its
 * sources (tsx, tests), built now with esbuild (a development dependency, present there).
 */
async function consoleScript(): Promise<string> {
  const built = await readFile(new URL(`./${SCRIPT_FILE}`, import.meta.url), "utf8").catch(() => null);
  if (built !== null) return built;
  const bundler = "./web/bundle.mjs";
  const { buildConsoleScript } = (await import(bundler)) as typeof import("./web/bundle.mjs");
  return buildConsoleScript();
}

let loading: Promise<ConsoleAssets> | undefined;

/** Loaded (or built) once per process, on the console's first request. */
export function loadConsoleAssets(): Promise<ConsoleAssets> {
  loading ??= consoleScript().then(
    (script) => ({
      script: asset(script, "text/javascript; charset=utf-8"),
      style: asset(CONSOLE_STYLE, "text/css; charset=utf-8"),
    }),
    (error: unknown) => {
      loading = undefined;
      throw error;
    },
  );
  return loading;
}
