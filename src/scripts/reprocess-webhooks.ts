import pino from "pino";
import { loadConfig } from "../config.js";
import { openDatabase } from "../db/client.js";
import { migrate } from "../db/migrate.js";
import { createLogger } from "../logger.js";
import { createPurchasesService } from "../modules/purchases/purchases.service.js";

/**
 * `npm run webhooks:reprocess`: applies recorded RevenueCat events whose product was not in
 * PRODUCT_TOKEN_MAP (or whose processing failed) again, with today's map. Idempotent: an event that
 * credits is claimed under a row lock, and a store transaction never credits twice.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(config.logLevel);
  const database = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, poolSize: 2 });
  try {
    await migrate(database);
    const purchases = createPurchasesService({ db: database.db, logger, config: config.revenuecat });
    const ids = await purchases.reprocessable();
    const counts: Record<string, number> = {};
    for (const eventId of ids) {
      const outcome = await purchases.reprocess(eventId);
      const key = outcome?.outcome ?? "skipped";
      counts[key] = (counts[key] ?? 0) + 1;
    }
    process.stdout.write(`${JSON.stringify({ reprocessed: ids.length, outcomes: counts })}\n`);
  } finally {
    await database.close();
  }
}

main().catch((error: unknown) => {
  pino().error({ err: error }, "reprocess failed");
  process.exit(1);
});
