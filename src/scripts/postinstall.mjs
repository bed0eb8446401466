// After `npm install`: prepare the embedded database's template (src/scripts/prepare-embedded.ts) and
// the bundle `npm start` runs (src/scripts/start.mjs), so a first start on a new data folder is
// quick. Both need dev dependencies (tsx, esbuild); an install without them (a production build on
// PostgreSQL, started with `npm run start:prod`) has no use for either.
import { spawnSync } from "node:child_process";

let tsx;
try {
  tsx = import.meta.resolve("tsx");
} catch {
  tsx = undefined;
}
if (!tsx) {
  console.log("token-ledger: no dev dependencies; the embedded database template is made at first start");
  process.exit(0);
}
const run = spawnSync(process.execPath, ["--import", "tsx", "src/scripts/prepare-embedded.ts"], {
  stdio: "inherit",
});
if (run.status !== 0) process.exit(run.status ?? 1);
const { buildBundle } = await import("./start.mjs");
const started = performance.now();
await buildBundle();
console.log(`token-ledger: start bundle ready in ${((performance.now() - started) / 1000).toFixed(1)} s`);
