import { createWriteStream } from "node:fs";
import { basename } from "node:path";
import { parseArgs } from "node:util";
import pino from "pino";
import { signDevToken } from "../auth/jwt.js";
import { type Config, ConfigError, loadConfig } from "../config.js";
import { type DatabaseHandle, openDatabase } from "../db/client.js";
import { DataDirInUseError, dataDirHolder } from "../db/data-dir-lock.js";
import { migrate } from "../db/migrate.js";
import { MAX_BALANCE } from "../db/schema.js";
import { withDevSecrets } from "../dev-secrets.js";
import { createLedgerService } from "../modules/ledger/ledger.service.js";
import { readCustomersFromApi } from "../modules/legacy/api-customers.js";
import { checkCustomerExport, ExportFormatError, readCustomerExport } from "../modules/legacy/csv-export.js";
import { formatReport, type ImportReport } from "../modules/legacy/import-report.js";
import { importLegacyBalances } from "../modules/legacy/legacy-import.service.js";
import type { LegacyLedgerReads } from "../modules/legacy/legacy-ledger-reads.js";
import { serverReads } from "../modules/legacy/legacy-server-reads.js";
import { createRevenuecatApi, type RevenuecatApi } from "../modules/legacy/revenuecat-api.js";

const USAGE = `usage: npm run legacy:import -- (--csv <export.csv.gz> | --ids <ids.txt>) --attribute <name> [options]

  --csv <file>          a Customer Lists export (gzipped or plain, ';' between fields)
  --ids <file>          app user ids, one a line, read through RevenueCat's API v2
                        (REVENUECAT_API_KEY, REVENUECAT_PROJECT_ID)
  --attribute <name>    the custom attribute that held the legacy balance
  --apply               write; without it nothing is written (a dry run). While a server holds the
                        embedded database (DATA_DIR), only a dry run works: it reads through the server
  --max-per-user <n>    refuse imports above n tokens (default: the balance cap, ${MAX_BALANCE})
  --flag-above <n>      flag imports above n tokens as suspicious (default 10000)
  --flag-ratio <r>      flag imports above r times the user's recorded purchases (default 10)
  --include-flagged     import flagged values too; by default they are held back and listed
                        (--skip-flagged, the old opt-in, is still accepted and changes nothing)
  --include-anonymous   credit $RCAnonymousID: customers too; by default they are held back and
                        listed (no signed-in user has such an id)
  --no-subtract-purchases
                        import each value as it is; by default the tokens this ledger's purchases
                        already credited the user are taken off it (never below 0), since an old app
                        build added those purchases to the attribute too
  --since <time>        count only purchases credited from <time> on (ISO 8601: when the webhook
                        went live; default: every purchase in the ledger)
  --until <time>        count only purchases credited before <time> (default: the run's start; give
                        the export's time when purchases came in after the export was made)
  --clear-attribute     with --apply: after a customer's import commits, delete the attribute in
                        RevenueCat (needs the API key); a failed clear is retried by the next run
  --rate <n>            API requests a minute (default 400; RevenueCat allows 480)
  --report <file>       write every customer's decision (value, already credited, imported) and every
                        malformed line (its number and why) to <file>, one JSON object a line
`;

interface Arguments {
  csv?: string;
  ids?: string;
  attribute: string;
  apply: boolean;
  maxPerUser: number;
  flagAbove: number;
  flagRatio: number;
  includeFlagged: boolean;
  /** The old opt-in, now the default: accepted, and said so. */
  skipFlaggedGiven: boolean;
  includeAnonymous: boolean;
  subtractPurchases: boolean;
  since?: Date | undefined;
  until?: Date | undefined;
  clearAttribute: boolean;
  rate: number;
  report?: string;
}

class UsageError extends Error {}

const parseOptions = (args: string[]) =>
  parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      csv: { type: "string" },
      ids: { type: "string" },
      attribute: { type: "string" },
      apply: { type: "boolean", default: false },
      "max-per-user": { type: "string" },
      "flag-above": { type: "string" },
      "flag-ratio": { type: "string" },
      "include-flagged": { type: "boolean", default: false },
      "skip-flagged": { type: "boolean", default: false },
      "include-anonymous": { type: "boolean", default: false },
      "no-subtract-purchases": { type: "boolean", default: false },
      since: { type: "string" },
      until: { type: "string" },
      "clear-attribute": { type: "boolean", default: false },
      rate: { type: "string" },
      report: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });

function parseArguments(argv: string[]): Arguments {
  let values: ReturnType<typeof parseOptions>["values"];
  try {
    ({ values } = parseOptions(argv));
  } catch (error) {
    // node:util's parseArgs names an unknown or malformed flag: that is a usage error.
    throw new UsageError((error as Error).message);
  }
  if (values.help) throw new UsageError("");
  if (Boolean(values.csv) === Boolean(values.ids))
    throw new UsageError("give exactly one of --csv and --ids");
  if (!values.attribute) throw new UsageError("--attribute is required");
  if (values["clear-attribute"] && !values.apply) throw new UsageError("--clear-attribute needs --apply");
  const number = (name: string, text: string | undefined, fallback: number, min: number) => {
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isFinite(value) || value < min)
      throw new UsageError(`--${name} must be a number of at least ${min}`);
    return value;
  };
  if (values["skip-flagged"] && values["include-flagged"])
    throw new UsageError("--skip-flagged and --include-flagged contradict each other");
  const time = (name: string, text: string | undefined) => {
    if (text === undefined) return undefined;
    const ms = Date.parse(text);
    if (Number.isNaN(ms)) throw new UsageError(`--${name} must be a time such as 2026-11-26T09:00:00Z`);
    return new Date(ms);
  };
  return {
    csv: values.csv,
    ids: values.ids,
    attribute: values.attribute,
    apply: values.apply,
    maxPerUser: number("max-per-user", values["max-per-user"], MAX_BALANCE, 1),
    flagAbove: number("flag-above", values["flag-above"], 10_000, 0),
    flagRatio: number("flag-ratio", values["flag-ratio"], 10, 1),
    includeFlagged: values["include-flagged"],
    skipFlaggedGiven: values["skip-flagged"],
    includeAnonymous: values["include-anonymous"],
    subtractPurchases: !values["no-subtract-purchases"],
    since: time("since", values.since),
    until: time("until", values.until),
    clearAttribute: values["clear-attribute"],
    rate: number("rate", values.rate, 400, 1),
    report: values.report,
  };
}

function revenuecatApi(config: Config, args: Arguments): RevenuecatApi | undefined {
  if (!args.ids && !args.clearAttribute) return undefined;
  const { key, projectId, url } = config.revenuecatApi;
  if (!key || !projectId) {
    throw new UsageError("--ids and --clear-attribute need REVENUECAT_API_KEY and REVENUECAT_PROJECT_ID");
  }
  return createRevenuecatApi({ baseUrl: url, projectId, apiKey: key, ratePerMinute: args.rate });
}

/** Where the import reads the ledger and, applying, writes it. */
interface LedgerAccess {
  readonly database?: DatabaseHandle;
  readonly reads?: LegacyLedgerReads;
}

/**
 * The embedded database belongs to one process. While a server holds it, a dry run (which writes
 * nothing) reads what it needs through that server; applying is refused, clearly: it writes many
 * thousands of entries, which belongs to a process that holds the database itself.
 */
async function openForImport(config: Config, args: Arguments): Promise<LedgerAccess> {
  if (!config.databaseUrl) {
    const holder = await dataDirHolder(config.dataDir);
    if (holder?.url && !args.apply) return { reads: await throughServer(config, holder.url) };
    if (holder) {
      throw new UsageError(
        `the embedded database in ${config.dataDir} is held by ${holder.url ? `the server at ${holder.url}` : `process ${holder.pid}`}. ` +
          "The import writes to the database directly: stop the server for it, or run the service and the import on PostgreSQL (DATABASE_URL). " +
          "A dry run (without --apply) reads through a running server.",
      );
    }
  }
  const database = await openDatabase({
    url: config.databaseUrl,
    directUrl: config.databaseDirectUrl,
    prepare: config.databasePrepare,
    dataDir: config.dataDir,
    poolSize: 8,
  });
  await migrate(database);
  return { database };
}

/** Reads through the server with a short-lived admin token signed by the (development) secret. */
async function throughServer(config: Config, url: string): Promise<LegacyLedgerReads> {
  const { config: withSecrets } = await withDevSecrets(config);
  const secret = withSecrets.jwt.secret;
  if (!secret) {
    throw new UsageError(
      `the embedded database in ${config.dataDir} is held by the server at ${url}, which verifies tokens from ` +
        "JWKS_URL, so this command cannot sign its admin token: stop the server for the dry run, or use PostgreSQL.",
    );
  }
  process.stderr.write(
    `The server at ${url} holds ${config.dataDir}: this dry run reads the ledger through it.\n`,
  );
  const token = await signDevToken({
    secret,
    userId: "legacy-import",
    admin: true,
    expiresIn: "1h",
    issuer: config.jwt.issuer,
    audience: config.jwt.audience,
    adminClaim: config.jwt.adminClaim,
    adminValue: config.jwt.adminValue,
  });
  return serverReads(url, token);
}

async function main(): Promise<void> {
  const args = parseArguments(process.argv.slice(2));
  if (args.skipFlaggedGiven) {
    process.stderr.write(
      "legacy:import: --skip-flagged is the default now (it changes nothing); --include-flagged imports flagged values\n",
    );
  }
  const config = loadConfig();
  const api = revenuecatApi(config, args);
  if (args.csv) await checkCustomerExport(args.csv, args.attribute);
  const { database, reads } = await openForImport(config, args);
  const reportFile = args.report ? createWriteStream(args.report) : undefined;
  let report: ImportReport | undefined;
  const started = Date.now();
  const progress = setInterval(() => printProgress(report, started), 2000);
  try {
    const ledger = database && createLedgerService({ database, logger: pino({ level: "silent" }) });
    const source = args.csv
      ? readCustomerExport(args.csv, args.attribute)
      : readCustomersFromApi(api as RevenuecatApi, args.ids as string, args.attribute);
    const finished = await importLegacyBalances({ db: database?.db, ledger, api, reads }, source, {
      apply: args.apply,
      attribute: args.attribute,
      source: args.csv ? `csv:${basename(args.csv)}` : "revenuecat-api",
      rules: { maxPerUser: args.maxPerUser, flagAbove: args.flagAbove, flagRatio: args.flagRatio },
      includeFlagged: args.includeFlagged,
      includeAnonymous: args.includeAnonymous,
      subtractPurchases: args.subtractPurchases,
      purchasesSince: args.since,
      purchasesUntil: args.until,
      clearAttribute: args.clearAttribute,
      onDecision: (decision) => reportFile?.write(`${JSON.stringify(decision)}\n`),
      onStart: (live) => {
        report = live;
      },
    });
    process.stdout.write(`${formatReport(finished)}\n`);
    process.stderr.write(`done in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    if (finished.totals.unreadable > 0 || finished.totals.clearFailed > 0) process.exitCode = 3;
  } finally {
    clearInterval(progress);
    reportFile?.end();
    await database?.close();
  }
}

function printProgress(report: ImportReport | undefined, started: number): void {
  if (!report) return;
  const t = report.totals;
  const seconds = (Date.now() - started) / 1000;
  process.stderr.write(
    `progress: ${t.customers} customers read in ${seconds.toFixed(0)} s (${Math.round(t.customers / seconds)}/s): ` +
      `${t.credited} ${report.mode === "apply" ? "credited" : "to credit"}, ${t.alreadyImported} already imported, ` +
      `${t.refused} refused, ${t.unreadable} unreadable\n`,
  );
}

main().catch((error: unknown) => {
  if (error instanceof UsageError) {
    process.stderr.write(error.message ? `legacy:import: ${error.message}\n\n${USAGE}` : USAGE);
    process.exit(error.message ? 2 : 0);
  }
  if (error instanceof ExportFormatError) {
    process.stderr.write(`legacy:import: ${error.message}\n`);
    process.exit(2);
  }
  const known = error instanceof ConfigError || error instanceof DataDirInUseError;
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`legacy:import failed: ${known ? message : ((error as Error).stack ?? message)}\n`);
  process.exit(1);
});
