import { signDevToken } from "../auth/jwt.js";
import type { Config } from "../config.js";
import { dataDirHolder } from "../db/data-dir-lock.js";
import { withDevSecrets } from "../dev-secrets.js";
import { createLogger } from "../logger.js";
import { createLedgerService } from "../modules/ledger/ledger.service.js";
import { createPurchasesService, type ReprocessSummary } from "../modules/purchases/purchases.service.js";
import { reprocessCandidates } from "../modules/purchases/webhook-reprocess.js";
import { commandConfig, openCommandDatabase, parseCommand, runCommand } from "./cli.js";

const USAGE = `
usage: npm run webhooks:reprocess [-- --dry-run | --help]

Applies the kept RevenueCat events whose product was not in PRODUCT_TOKEN_MAP (unmapped) or whose
processing failed again, with today's map. Each store transaction credits at most once, so running
it twice, or beside running servers, changes nothing twice.

  --dry-run    list each event and what today's map would do with it; change nothing
  --help       this text

Prints one JSON line per event, then a summary line; products still missing from the map are named
on stderr. On the embedded database, while a server holds DATA_DIR, the command asks that server
(its reprocessWebhooks mutation, whose map applies): then only the summary is printed, and
--dry-run needs the server stopped.
`;

/**
 * `npm run webhooks:reprocess`: applies recorded RevenueCat events whose product was not in
 * PRODUCT_TOKEN_MAP (or whose processing failed) again, with today's map. Idempotent: an event that
 * credits is claimed under a row lock, and a store transaction never credits twice.
 *
 * On PostgreSQL it works beside running servers. The embedded database belongs to one process: when
 * a server holds it, the command asks that server (the admin-only reprocessWebhooks mutation, with a
 * short-lived admin token signed by the development secret), so the server's own map applies.
 */
runCommand("webhooks:reprocess", async () => {
  const { values } = parseCommand({
    name: "webhooks:reprocess",
    usage: USAGE,
    options: { "dry-run": { type: "boolean" } },
  });
  const dryRun = values["dry-run"] === true;
  const { config } = await withDevSecrets(commandConfig("webhooks:reprocess"));
  const holder = config.databaseUrl ? null : await dataDirHolder(config.dataDir);
  if (holder?.url && dryRun) {
    throw new Error(`the server at ${holder.url} holds ${config.dataDir}: stop it for a dry run`);
  }
  const summary = holder?.url ? await throughServer(config, holder.url) : await directly(config, dryRun);
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  const missing = Object.entries(summary.unmappedProducts ?? {});
  if (missing.length > 0) {
    const list = missing.map(([product, count]) => `${product} (${count} events)`).join(", ");
    process.stderr.write(
      `Still unmapped: ${list}. Add them to PRODUCT_TOKEN_MAP, restart the servers, and run this again.\n`,
    );
  }
});

interface Summary extends ReprocessSummary {
  readonly dryRun?: boolean;
  /** Product id → events still unmapped after this run (or, in a dry run, that would stay so). */
  readonly unmappedProducts?: Record<string, number>;
}

async function directly(config: Config, dryRun: boolean): Promise<Summary> {
  const logger = createLogger(config.logLevel);
  const database = await openCommandDatabase(config);
  try {
    const candidates = await reprocessCandidates(database.db, config.revenuecat);
    const ledger = createLedgerService({ database, logger });
    const purchases = createPurchasesService({ database, ledger, logger, config: config.revenuecat });
    const outcomes: Record<string, number> = {};
    const unmappedProducts: Record<string, number> = {};
    for (const candidate of candidates) {
      const { wouldDo, ...event } = candidate;
      let line: object = candidate;
      let outcome = wouldDo;
      if (!dryRun) {
        const done = await purchases.reprocess(candidate.eventId);
        outcome = done?.outcome ?? "skipped";
        line = { ...event, outcome, detail: done?.detail ?? "another run took it first" };
      }
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      if (outcome === "unmapped") {
        const product = candidate.productId ?? "(none)";
        unmappedProducts[product] = (unmappedProducts[product] ?? 0) + 1;
      }
      process.stdout.write(`${JSON.stringify(line)}\n`);
    }
    const reprocessed = dryRun ? 0 : candidates.length;
    return { reprocessed, outcomes, unmappedProducts, ...(dryRun ? { dryRun } : {}) };
  } finally {
    await database.close();
  }
}

const REPROCESS = `mutation { reprocessWebhooks { reprocessed outcomes { outcome count } } }`;

async function throughServer(config: Config, url: string): Promise<Summary> {
  if (!config.jwt.secret) {
    throw new Error(
      `The embedded database in ${config.dataDir} is held by the server at ${url}, which verifies tokens ` +
        "from JWKS_URL. Call its reprocessWebhooks mutation with an admin token, or stop it and run this again.",
    );
  }
  process.stderr.write(`The server at ${url} holds ${config.dataDir}; reprocessing through it.\n`);
  const token = await signDevToken({
    secret: config.jwt.secret,
    userId: "webhooks-reprocess",
    admin: true,
    expiresIn: "5m",
    issuer: config.jwt.issuer,
    audience: config.jwt.audience,
    adminClaim: config.jwt.adminClaim,
    adminValue: config.jwt.adminValue,
  });
  const response = await fetch(`${url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: REPROCESS }),
  });
  const body = (await response.json()) as {
    data?: { reprocessWebhooks: { reprocessed: number; outcomes: { outcome: string; count: number }[] } };
    errors?: { message: string }[];
  };
  if (!body.data) throw new Error(`the server refused: ${body.errors?.map((e) => e.message).join("; ")}`);
  const { reprocessed, outcomes } = body.data.reprocessWebhooks;
  return { reprocessed, outcomes: Object.fromEntries(outcomes.map((o) => [o.outcome, o.count])) };
}
