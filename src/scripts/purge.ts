import { createRetentionService } from "../modules/retention/retention.service.js";
import { commandConfig, openCommandDatabase, parseCommand, runCommand } from "./cli.js";

const USAGE = `
usage: npm run purge [-- --help]

Applies the retention periods once, as a running server does every PURGE_INTERVAL_MINUTES:
  - stored RevenueCat bodies older than WEBHOOK_BODY_RETENTION_DAYS (default 30) are reduced to the
    fields the service acts on (the subscriber's attributes, e-mail, country and the rest are gone;
    the event id, outcome and store transaction stay, so redeliveries still change nothing);
  - rate-limit counters expired more than RATE_LIMIT_RETENTION_HOURS ago (default 1) are deleted.
Prints what it did as JSON. Safe beside running servers on PostgreSQL; on the embedded database the
server holding DATA_DIR purges by itself.
`;

runCommand("purge", async () => {
  parseCommand({ name: "purge", usage: USAGE, options: {} });
  const config = commandConfig("purge");
  const database = await openCommandDatabase(config);
  try {
    const summary = await createRetentionService({ db: database.db, config: config.retention }).purge();
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } finally {
    await database.close();
  }
});
