import { createReadStream, createWriteStream, existsSync } from "node:fs";
import { createInterface } from "node:readline";
import type { Config } from "../config.js";
import { createLogger } from "../logger.js";
import { createLedgerService } from "../modules/ledger/ledger.service.js";
import { createRevenuecatApi } from "../modules/legacy/revenuecat-api.js";
import { createPurchasesService } from "../modules/purchases/purchases.service.js";
import { parseDuration } from "../modules/reconcile/duration.js";
import {
  checkTransactionExport,
  ExportFileError,
  readTransactionExport,
} from "../modules/reconcile/export-transactions.js";
import { type ReconcileInput, reconcile } from "../modules/reconcile/reconcile.service.js";
import { activeUsersSince, formatSummary, isIncomplete } from "../modules/reconcile/reconcile-report.js";
import { readCustomers, readProductMap } from "../modules/reconcile/v2-customers.js";
import { commandConfig, openCommandDatabase, parseCommand, runCommand } from "./cli.js";

const USAGE = `
usage: npm run reconcile -- (--customers <file> | --since <time> | --export <file>) [options]

Finds purchases RevenueCat knows that this ledger never credited (their webhook never arrived) and
refunds it never took back. A dry run unless --apply; see docs/reconcile.md.

  --customers <file>  our user ids, one a line, read through RevenueCat's API v2
                      (REVENUECAT_API_KEY, REVENUECAT_PROJECT_ID)
  --since <time>      the users active here since <time> (ISO 8601, or an age such as 48h, 2d),
                      read through the API v2
  --export <file>     a Scheduled Data Export of transactions (CSV, gzipped or plain): no API calls
  --apply             credit missing purchases through the webhook's own path (exactly once)
  --refunds           with --apply: also take back purchases refunded in RevenueCat
  --report <file>     every transaction's outcome, one JSON object a line
  --resume            with --customers or --since and --report: skip customers the report already
                      holds (a stopped run picks up where it stopped; running again is safe anyway)
  --rate <n>          API requests a minute (default 300; RevenueCat allows 480 per key)
  --margin <age>      purchases younger than this are pending delivery, not missing (default 3h)
  --max-credits <n>   with --apply: credit at most n purchases in this run (a guard-rail; the rest
                      are reported missing)

Exit status: 0 done; 2 usage or a wrong file; 3 something could not be read or applied; 1 failure.
`;

runCommand("reconcile", async () => {
  const { values } = parseCommand({
    name: "reconcile",
    usage: USAGE,
    options: {
      customers: { type: "string" },
      since: { type: "string" },
      export: { type: "string" },
      apply: { type: "boolean" },
      refunds: { type: "boolean" },
      report: { type: "string" },
      resume: { type: "boolean" },
      rate: { type: "string" },
      margin: { type: "string" },
      "max-credits": { type: "string" },
    },
  });
  const args = checkArguments(values);
  const config = commandConfig("reconcile");
  if (args.exportFile) await checkTransactionExport(args.exportFile).catch(usageOnWrongFile);
  const logger = createLogger(config.logLevel === "info" ? "warn" : config.logLevel);
  const database = await openCommandDatabase(config);
  const skip = args.resume && args.report ? await customersIn(args.report) : new Set<string>();
  const reportFile = args.report
    ? createWriteStream(args.report, { flags: args.resume ? "a" : "w" })
    : undefined;
  const started = Date.now();
  let judged = 0;
  let lines = 0;
  const progress = setInterval(() => {
    const seconds = (Date.now() - started) / 1000;
    const read = args.exportFile ? `${lines} export lines read, ` : "";
    process.stderr.write(`progress: ${read}${judged} transactions judged in ${seconds.toFixed(0)} s\n`);
  }, 2000);
  try {
    const ledger = createLedgerService({ database, logger });
    const purchases = createPurchasesService({ database, ledger, logger, config: config.revenuecat });
    const input = args.exportFile
      ? fromExport(args.exportFile, (count) => {
          lines = count;
        })
      : await fromApi(config, args, database.db, skip);
    const summary = await reconcile(
      { db: database.db, purchases, policy: config.revenuecat, logger },
      input,
      {
        apply: args.apply,
        refunds: args.refunds,
        marginMs: args.marginMs,
        maxCredits: args.maxCredits,
        onItem: (item) => reportFile?.write(`${JSON.stringify(item)}\n`),
        onProgress: (count) => {
          judged = count;
        },
      },
    );
    process.stdout.write(`${formatSummary(summary, (Date.now() - started) / 1000)}\n`);
    if (isIncomplete(summary)) process.exitCode = 3;
  } finally {
    clearInterval(progress);
    await new Promise((resolve) => (reportFile ? reportFile.end(resolve) : resolve(undefined)));
    await database.close();
  }
});

interface Arguments {
  customers?: string;
  since?: Date;
  exportFile?: string;
  apply: boolean;
  refunds: boolean;
  report?: string;
  resume: boolean;
  rate: number;
  marginMs: number;
  maxCredits?: number;
}

function checkArguments(values: Readonly<Record<string, string | boolean | undefined>>): Arguments {
  const text = (name: string) => (typeof values[name] === "string" ? (values[name] as string) : undefined);
  const sources = ["customers", "since", "export"].filter((name) => text(name) !== undefined);
  if (sources.length !== 1) usage("give exactly one of --customers, --since and --export");
  if (values.refunds && !values.apply) usage("--refunds needs --apply");
  if (values.resume && (!text("report") || text("export")))
    usage("--resume needs --report and an API source");
  const rate = Number(text("rate") ?? 300);
  if (!Number.isInteger(rate) || rate < 1 || rate > 480) usage("--rate must be a whole number from 1 to 480");
  const maxCredits = text("max-credits") === undefined ? undefined : Number(text("max-credits"));
  if (maxCredits !== undefined && !(Number.isInteger(maxCredits) && maxCredits >= 0)) {
    usage("--max-credits must be a whole number");
  }
  const margin = parseDuration(text("margin") ?? "3h");
  if (margin === null) usage("--margin must be an age such as 3h or 90m");
  let since: Date | undefined;
  const sinceText = text("since");
  if (sinceText !== undefined) {
    const age = parseDuration(sinceText);
    since = new Date(age !== null ? Date.now() - age : Date.parse(sinceText));
    if (Number.isNaN(since.getTime()))
      usage("--since must be a time such as 2026-12-01T00:00:00Z, or an age such as 48h");
  }
  return {
    customers: text("customers"),
    since,
    exportFile: text("export"),
    apply: values.apply === true,
    refunds: values.refunds === true,
    report: text("report"),
    resume: values.resume === true,
    rate,
    marginMs: margin,
    maxCredits,
  } as Arguments;
}

function usage(message: string): never {
  process.stderr.write(`reconcile: ${message}\n\n${USAGE.trim()}\n`);
  process.exit(2);
}

function usageOnWrongFile(error: unknown): never {
  if (error instanceof ExportFileError || (error as NodeJS.ErrnoException).code === "ENOENT") {
    process.stderr.write(`reconcile: ${(error as Error).message}\n`);
    process.exit(2);
  }
  throw error;
}

async function* fromExport(path: string, onLines: (lines: number) => void): AsyncGenerator<ReconcileInput> {
  yield* readTransactionExport(path, onLines);
}

async function fromApi(
  config: Config,
  args: Arguments,
  db: Parameters<typeof activeUsersSince>[0],
  skip: ReadonlySet<string>,
): Promise<AsyncIterable<ReconcileInput>> {
  const { key, projectId, url } = config.revenuecatApi;
  if (!key || !projectId) usage("--customers and --since need REVENUECAT_API_KEY and REVENUECAT_PROJECT_ID");
  const api = createRevenuecatApi({ baseUrl: url, projectId, apiKey: key, ratePerMinute: args.rate });
  const products = await readProductMap(api);
  const ids = args.customers
    ? readIds(args.customers)
    : (await activeUsersSince(db, args.since as Date)).values();
  return readCustomers(api, products, skipping(ids, skip));
}

async function* skipping(ids: Iterable<string> | AsyncIterable<string>, skip: ReadonlySet<string>) {
  for await (const id of ids) if (!skip.has(id)) yield id;
}

async function* readIds(path: string): AsyncGenerator<string> {
  if (!existsSync(path)) usage(`${path}: no such file`);
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of lines) {
    const id = line.trim();
    if (id && !id.startsWith("#")) yield id;
  }
}

/** Customers a report already holds, except those that could not be read (they are read again). */
async function customersIn(report: string): Promise<Set<string>> {
  const done = new Set<string>();
  const again = new Set<string>();
  if (!existsSync(report)) return done;
  const lines = createInterface({ input: createReadStream(report), crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of lines) {
    let item: { userId?: string | null; outcome?: string };
    try {
      item = JSON.parse(line);
    } catch {
      continue; // The last line of a run that was killed while writing it.
    }
    if (!item.userId) continue;
    (item.outcome === "could_not_be_read" ? again : done).add(item.userId);
  }
  for (const id of again) done.delete(id);
  return done;
}
