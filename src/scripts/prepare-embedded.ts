import { embeddedTemplate } from "../db/embedded.js";

/**
 * Run by `npm install` (postinstall): prepares the embedded database's template once, so `npm start`
 * on a new data folder starts in well under two seconds instead of initialising PostgreSQL inside
 * WebAssembly first (see src/db/embedded.ts).
 */
const started = performance.now();
const template = await embeddedTemplate();
process.stdout.write(
  `token-ledger: embedded database template ready in ${((performance.now() - started) / 1000).toFixed(1)} s (${template})\n`,
);
