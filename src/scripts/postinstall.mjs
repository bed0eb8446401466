// After `npm install`: prepare the embedded database's template (src/scripts/prepare-embedded.ts),
// so a new data folder starts in well under two seconds. It runs with tsx, a dev dependency; an
// install without dev dependencies (a production build on PostgreSQL) has no use for it.
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
process.exit(run.status ?? 1);
