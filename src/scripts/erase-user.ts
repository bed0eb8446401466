import { createRetentionService } from "../modules/retention/retention.service.js";
import { commandConfig, openCommandDatabase, parseCommand, runCommand } from "./cli.js";

const USAGE = `
usage: npm run erase-user -- <userId> [--dry-run]

Erases what token-ledger keeps about one user outside the ledger (docs/operations.md, "Erasing a
user"): every stored RevenueCat body that names the user (as the user, the app user id, an alias or
a transfer's party) is reduced at once to the fields the service acts on, and the user's rate-limit
counters are deleted. The ledger (entries and balance) is the accounts and is kept as it is: the
user id in it is the app's own opaque id; erase the person behind it in your identity provider.

  <userId>     the JWT sub / RevenueCat app_user_id
  --dry-run    count what would be erased; change nothing
  --help       this text

Prints a JSON report, including what the ledger keeps. On the embedded database, stop the server
holding DATA_DIR first.
`;

runCommand("erase-user", async () => {
  const { values, positionals } = parseCommand({
    name: "erase-user",
    usage: USAGE,
    options: { "dry-run": { type: "boolean" } },
    positionals: { min: 1, max: 1 },
  });
  const userId = positionals[0] as string;
  const config = commandConfig("erase-user");
  const database = await openCommandDatabase(config);
  try {
    const retention = createRetentionService({ db: database.db, config: config.retention });
    const report = await retention.eraseUser(userId, { dryRun: values["dry-run"] === true });
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } finally {
    await database.close();
  }
});
