import { openDatabase } from "../db/client.js";
import { migrate, pendingMigrations } from "../db/migrate.js";
import { commandConfig, parseCommand, runCommand } from "./cli.js";

const USAGE = `
usage: npm run migrate [-- --help]

Applies the pending migrations in drizzle/ to the configured database (DATABASE_URL, else the
embedded database in DATA_DIR), then exits; through DATABASE_DIRECT_URL when it is set (a
transaction-mode pooler in DATABASE_URL). Safe to run again and beside running servers: instances and
this command take turns on a transaction-scoped advisory lock, and a migration is never applied twice.

Run it with a role that may change the schema, before starting servers whose role may only read and
write data (MIGRATE_ON_START=false). See docs/operations.md, "Migrations and database privileges".
`;

runCommand("migrate", async () => {
  parseCommand({ name: "migrate", usage: USAGE, options: {} });
  const config = commandConfig("migrate");
  const database = await openDatabase({
    url: config.databaseUrl,
    directUrl: config.databaseDirectUrl,
    prepare: config.databasePrepare,
    dataDir: config.dataDir,
    poolSize: 1,
  });
  try {
    const applied = await migrate(database);
    const left = await pendingMigrations(database);
    process.stdout.write(`${JSON.stringify({ applied, pending: left })}\n`);
  } finally {
    await database.close();
  }
});
