import { signDevToken } from "../auth/jwt.js";
import { type Config, loadConfig } from "../config.js";
import { openDatabase } from "../db/client.js";
import { DataDirInUseError, dataDirHolder } from "../db/data-dir-lock.js";
import { migrate } from "../db/migrate.js";
import { withDevSecrets } from "../dev-secrets.js";
import { createLogger } from "../logger.js";
import { createLedgerService } from "../modules/ledger/ledger.service.js";
import { createPurchasesService, type ReprocessSummary } from "../modules/purchases/purchases.service.js";

/**
 * `npm run webhooks:reprocess`: applies recorded RevenueCat events whose product was not in
 * PRODUCT_TOKEN_MAP (or whose processing failed) again, with today's map. Idempotent: an event that
 * credits is claimed under a row lock, and a store transaction never credits twice.
 *
 * On PostgreSQL it works beside running servers. The embedded database belongs to one process: when
 * a server holds it, the command asks that server (the admin-only reprocessWebhooks mutation, with a
 * short-lived admin token signed by the development secret), so the server's own map applies.
 */
async function main(): Promise<void> {
  const { config } = await withDevSecrets(loadConfig());
  const holder = config.databaseUrl ? null : await dataDirHolder(config.dataDir);
  const summary = holder?.url ? await throughServer(config, holder.url) : await directly(config);
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}

async function directly(config: Config): Promise<ReprocessSummary> {
  const logger = createLogger(config.logLevel);
  const database = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, poolSize: 2 });
  try {
    await migrate(database);
    const ledger = createLedgerService({ database, logger });
    const purchases = createPurchasesService({ database, ledger, logger, config: config.revenuecat });
    return await purchases.reprocessAll();
  } finally {
    await database.close();
  }
}

const REPROCESS = `mutation { reprocessWebhooks { reprocessed outcomes { outcome count } } }`;

async function throughServer(config: Config, url: string): Promise<ReprocessSummary> {
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

main().catch((error: unknown) => {
  const message =
    error instanceof DataDirInUseError || error instanceof Error ? error.message : String(error);
  process.stderr.write(`webhooks:reprocess failed: ${message}\n`);
  process.exit(1);
});
