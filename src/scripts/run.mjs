// Runs a maintenance command (`npm run migrate`, `purge`, `erase-user`, `webhooks:reprocess`,
// `legacy:import`, `token`): `node src/scripts/run.mjs <script> [args…]` runs
// src/scripts/<script>.ts. From the compiled build (dist/src/scripts/<script>.js, made by
// `npm run build`) when it is there and no source is newer, so a production install without dev
// dependencies (`npm ci --omit=dev`, no tsx) runs every command; otherwise from the sources through
// tsx, so a development checkout never runs a stale build. Either way the command runs in this
// process (signals and the exit code are its own).
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const [script, ...args] = process.argv.slice(2);
if (!script || !/^[a-z][a-z-]*$/.test(script)) {
  process.stderr.write("usage: node src/scripts/run.mjs <script> [args…]\n");
  process.exit(2);
}
const compiled = join(root, "dist", "src", "scripts", `${script}.js`);
const source = join(root, "src", "scripts", `${script}.ts`);

/** The newest modification time of the TypeScript sources (0 when there are none). */
function newestSource() {
  const folder = join(root, "src");
  let newest = 0;
  for (const file of readdirSync(folder, { recursive: true })) {
    if (String(file).endsWith(".ts")) newest = Math.max(newest, statSync(join(folder, String(file))).mtimeMs);
  }
  return newest;
}

function hasTsx() {
  try {
    import.meta.resolve("tsx/esm/api");
    return true;
  } catch {
    return false;
  }
}

const tsx = existsSync(source) && hasTsx();
const fresh = existsSync(compiled) && (!tsx || statSync(compiled).mtimeMs >= newestSource());
// The command reads its own arguments from process.argv, as if it had been started directly.
process.argv = [process.argv[0], fresh ? compiled : source, ...args];
if (fresh) {
  await import(pathToFileURL(compiled).href);
} else if (tsx) {
  const { register } = await import("tsx/esm/api");
  register();
  await import(pathToFileURL(source).href);
} else {
  process.stderr.write(
    `${script}: ${compiled} is missing and tsx is not installed: run npm run build where the dev dependencies are installed, and ship dist/ with the app\n`,
  );
  process.exit(1);
}
