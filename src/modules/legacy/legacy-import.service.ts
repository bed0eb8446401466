import type { Database } from "../../db/client.js";
import { BalanceLimitError } from "../ledger/ledger.errors.js";
import { importedCustomers, purchasedTokensOf } from "../ledger/ledger.queries.js";
import type { LedgerService } from "../ledger/ledger.service.js";
import { emptyReport, type ImportReport } from "./import-report.js";
import { clearedCustomers, recordCleared } from "./legacy-clears.js";
import type { LegacyCustomer, SourceItem } from "./legacy-source.js";
import { judge, type ValueRules } from "./legacy-value.js";
import type { RevenuecatApi } from "./revenuecat-api.js";

export interface LegacyImportOptions {
  /** Write; without it the run only reports what it would do. */
  readonly apply: boolean;
  readonly attribute: string;
  /** Where the customers come from, for the report and each entry's metadata. */
  readonly source: string;
  readonly rules: ValueRules;
  /** Do not import flagged values (they are listed). */
  readonly skipFlagged: boolean;
  /** After a customer's import has committed, delete the attribute in RevenueCat (needs `api`). */
  readonly clearAttribute: boolean;
  /** Customers read and decided together (one lookup each for what the database already knows). */
  readonly chunkSize?: number;
  /** Given the report as soon as the run starts; it fills in as customers are decided (for progress). */
  readonly onStart?: (report: ImportReport) => void;
  /** Told every customer's decision, for a full report file. */
  readonly onDecision?: (decision: Record<string, unknown>) => void;
}

export interface LegacyImportDeps {
  readonly db: Database;
  readonly ledger: LedgerService;
  /** Needed to clear the attribute. */
  readonly api?: RevenuecatApi | undefined;
}

/**
 * Carries legacy balances into the ledger, exactly once per customer: each credit is one
 * LEGACY_IMPORT entry through the ledger's own door, keyed by the customer, so a second run, a run
 * beside another, or a run after an interrupted one never credits twice. Customers are taken a chunk
 * at a time; a chunk's credits go to the ledger together, where group commit writes them in batches.
 */
export async function importLegacyBalances(
  deps: LegacyImportDeps,
  source: AsyncIterable<SourceItem>,
  options: LegacyImportOptions,
): Promise<ImportReport> {
  const report = emptyReport(options.apply ? "apply" : "dry run", options.source, options.attribute);
  options.onStart?.(report);
  const chunkSize = options.chunkSize ?? 500;
  let chunk: SourceItem[] = [];
  for await (const item of source) {
    chunk.push(item);
    if (chunk.length >= chunkSize) {
      await importChunk(deps, chunk, options, report);
      chunk = [];
    }
  }
  await importChunk(deps, chunk, options, report);
  return report;
}

async function importChunk(
  deps: LegacyImportDeps,
  items: readonly SourceItem[],
  options: LegacyImportOptions,
  report: ImportReport,
): Promise<void> {
  const customers: LegacyCustomer[] = [];
  for (const item of items) {
    if (item.kind === "customer") customers.push(item.customer);
    else recordNonCustomer(item, report);
  }
  if (customers.length === 0) return;
  const ids = customers.map((customer) => customer.customerId);
  const [imported, purchased, cleared] = await Promise.all([
    importedCustomers(deps.db, ids),
    purchasedTokensOf(
      deps.db,
      customers.map((customer) => customer.userId),
    ),
    options.clearAttribute ? clearedCustomers(deps.db, ids) : Promise.resolve(new Set<string>()),
  ]);
  const committed = await Promise.all(
    customers.map((customer) =>
      importCustomer(
        deps,
        customer,
        imported.get(customer.customerId),
        purchased.get(customer.userId) ?? 0,
        options,
        report,
      ),
    ),
  );
  if (!options.apply || !options.clearAttribute) return;
  for (const [i, customer] of customers.entries()) {
    if (committed[i] && customer.attribute && !cleared.has(customer.customerId))
      await clear(deps, customer, options, report);
  }
}

/** Decides one customer and, when applying, credits it; true when its import is committed (now or before). */
async function importCustomer(
  deps: LegacyImportDeps,
  customer: LegacyCustomer,
  importedAt: Date | undefined,
  purchased: number,
  options: LegacyImportOptions,
  report: ImportReport,
): Promise<boolean> {
  const t = report.totals;
  t.customers += 1;
  const { customerId, userId, attribute } = customer;
  if (customer.nearMatches.length > 0) report.nearMatches.push({ customerId, names: customer.nearMatches });
  const decide = (decision: string, extra: Record<string, unknown> = {}) =>
    options.onDecision?.({ customerId, userId, decision, value: attribute?.raw ?? null, ...extra });
  if (importedAt) {
    t.alreadyImported += 1;
    if (attribute?.updatedAtMs && attribute.updatedAtMs > importedAt.getTime()) {
      report.recreated.push({ customerId, updatedAt: new Date(attribute.updatedAtMs).toISOString() });
    }
    decide("already imported");
    return true;
  }
  const judgement = judge(attribute, options.rules, purchased);
  if (judgement.verdict === "skip") {
    t[judgement.reason === "no attribute" ? "noAttribute" : judgement.reason] += 1;
    decide(judgement.reason);
    return false;
  }
  if (judgement.verdict === "refuse") return refuse(report, customer, judgement.reason, decide);
  const { tokens, flags } = judgement;
  const held = flags.length > 0 && options.skipFlagged;
  if (flags.length > 0) {
    t.flagged += 1;
    report.flagged.push({ customerId, userId, tokens, flags, imported: !held && options.apply });
  }
  if (held) {
    t.heldFlagged += 1;
    decide("held: flagged", { flags });
    return false;
  }
  if (!options.apply) {
    credit(report, tokens);
    decide("would credit", { tokens, flags });
    return false;
  }
  return write(deps, customer, tokens, options, report, decide);
}

async function write(
  deps: LegacyImportDeps,
  customer: LegacyCustomer,
  tokens: number,
  options: LegacyImportOptions,
  report: ImportReport,
  decide: (decision: string, extra?: Record<string, unknown>) => void,
): Promise<boolean> {
  const attribute = customer.attribute;
  const metadata = {
    source: options.source,
    attribute: options.attribute,
    rawValue: attribute?.raw ?? null,
    updatedAt: attribute?.updatedAtMs ? new Date(attribute.updatedAtMs).toISOString() : null,
    customerId: customer.customerId,
  };
  try {
    const result = await deps.ledger.importLegacy({ ...customer, tokens, metadata });
    if (result.status === "already-imported") {
      report.totals.alreadyImported += 1;
      decide("already imported");
    } else {
      credit(report, tokens);
      decide("credited", { tokens, entryId: result.entry.id });
    }
    return true;
  } catch (error) {
    if (!(error instanceof BalanceLimitError)) throw error;
    return refuse(report, customer, "the user's balance would pass the cap", decide);
  }
}

function credit(report: ImportReport, tokens: number): void {
  report.totals.credited += 1;
  report.totals.creditedTokens += tokens;
}

function refuse(
  report: ImportReport,
  customer: LegacyCustomer,
  reason: string,
  decide: (decision: string, extra?: Record<string, unknown>) => void,
): false {
  report.totals.refused += 1;
  const { customerId, userId } = customer;
  report.refused.push({ customerId, userId, value: customer.attribute?.raw ?? null, reason });
  decide("refused", { reason });
  return false;
}

/** Deletes the attribute once its import has committed; a failure is reported and retried next run. */
async function clear(
  deps: LegacyImportDeps,
  customer: LegacyCustomer,
  options: LegacyImportOptions,
  report: ImportReport,
): Promise<void> {
  if (!deps.api) throw new Error("clearing the attribute needs the RevenueCat API");
  try {
    await deps.api.deleteAttribute(customer.userId, options.attribute);
    await recordCleared(deps.db, customer.customerId, options.attribute);
    report.totals.cleared += 1;
  } catch (error) {
    report.totals.clearFailed += 1;
    report.clearFailed.push({
      customerId: customer.customerId,
      reason: error instanceof Error ? error.message : String(error),
    });
  }
}

function recordNonCustomer(item: Exclude<SourceItem, { kind: "customer" }>, report: ImportReport): void {
  const t = report.totals;
  switch (item.kind) {
    case "not-found":
      t.notFound += 1;
      report.notFound.push(item.id);
      return;
    case "unreadable":
      t.unreadable += 1;
      report.unreadable.push({ id: item.id, reason: item.reason });
      return;
    case "alias":
      t.aliases += 1;
      return;
    case "malformed":
      t.malformed += 1;
      report.malformed.push({ line: item.line, reason: item.reason });
      return;
  }
}
