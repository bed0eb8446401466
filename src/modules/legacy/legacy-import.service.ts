import type { Database } from "../../db/client.js";
import type { PurchaseCredits } from "../ledger/ledger.queries.js";
import type { LedgerService } from "../ledger/ledger.service.js";
import { emptyReport, type ImportReport, recordNonCustomer } from "./import-report.js";
import { clearedCustomers, recordCleared } from "./legacy-clears.js";
import { databaseReads, type LegacyLedgerReads, type PurchaseWindow } from "./legacy-ledger-reads.js";
import { isAnonymousId, type LegacyCustomer, type SourceItem } from "./legacy-source.js";
import { judge, limitAndFlags, type ValueRules } from "./legacy-value.js";
import type { RevenuecatApi } from "./revenuecat-api.js";

export interface LegacyImportOptions {
  /** Write; without it the run only reports what it would do. */
  readonly apply: boolean;
  readonly attribute: string;
  /** Where the customers come from, for the report and each entry's metadata. */
  readonly source: string;
  readonly rules: ValueRules;
  /** Import flagged values too; by default they are held back and listed. */
  readonly includeFlagged?: boolean | undefined;
  /** Credit `$RCAnonymousID:` customers too; by default they are held back and listed. */
  readonly includeAnonymous?: boolean | undefined;
  /**
   * Subtract from each value the tokens this ledger's purchases already credited the user (default
   * true): an old app build adds a purchase to the attribute, and the webhook credits it here too.
   */
  readonly subtractPurchases?: boolean | undefined;
  /** Count only purchases credited from then on (when the webhook went live). */
  readonly purchasesSince?: Date | undefined;
  /** Count only purchases credited before then; the run's start by default. */
  readonly purchasesUntil?: Date | undefined;
  /** After a customer's import has committed, delete the attribute in RevenueCat (needs `api`). */
  readonly clearAttribute: boolean;
  /** Customers read and decided together (one lookup each for what the database already knows). */
  readonly chunkSize?: number;
  /** Given the report as soon as the run starts; it fills in as customers are decided (for progress). */
  readonly onStart?: (report: ImportReport) => void;
  /** Told every customer's decision, and every line or id that gave none, for a full report file. */
  readonly onDecision?: (decision: Record<string, unknown>) => void;
}

export interface LegacyImportDeps {
  /** Needed to apply (with `ledger`) and to clear; a dry run through `reads` needs neither. */
  readonly db?: Database | undefined;
  /** The writer, needed to apply. */
  readonly ledger?: LedgerService | undefined;
  /** Needed to clear the attribute. */
  readonly api?: RevenuecatApi | undefined;
  /** How to read what the ledger knows; the database `db` by default. */
  readonly reads?: LegacyLedgerReads | undefined;
}

interface Run {
  readonly deps: LegacyImportDeps;
  readonly reads: LegacyLedgerReads;
  readonly options: LegacyImportOptions;
  readonly window: PurchaseWindow;
  readonly report: ImportReport;
}

type Decide = (decision: string, extra?: Record<string, unknown>) => void;

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
  const reads = deps.reads ?? (deps.db ? databaseReads(deps.db) : undefined);
  if (!reads) throw new Error("the legacy import needs the database or another way to read the ledger");
  if (options.apply && !(deps.db && deps.ledger))
    throw new Error("applying needs the database and the ledger");
  const window = { since: options.purchasesSince, until: options.purchasesUntil ?? new Date() };
  report.purchaseRule =
    options.subtractPurchases === false
      ? "off: --no-subtract-purchases"
      : `purchases credited here ${window.since ? `from ${window.since.toISOString()} ` : ""}before ${window.until.toISOString()}`;
  const run: Run = { deps, reads, options, window, report };
  options.onStart?.(report);
  const chunkSize = options.chunkSize ?? 500;
  let chunk: SourceItem[] = [];
  for await (const item of source) {
    chunk.push(item);
    if (chunk.length >= chunkSize) {
      await importChunk(run, chunk);
      chunk = [];
    }
  }
  await importChunk(run, chunk);
  return report;
}

async function importChunk(run: Run, items: readonly SourceItem[]): Promise<void> {
  const { deps, options } = run;
  const customers: LegacyCustomer[] = [];
  for (const item of items) {
    if (item.kind === "customer") customers.push(item.customer);
    else recordNonCustomer(run.report, item, options.onDecision);
  }
  if (customers.length === 0) return;
  const ids = customers.map((customer) => customer.customerId);
  const [facts, cleared] = await Promise.all([
    run.reads.facts(
      ids,
      customers.map((customer) => customer.userId),
      run.window,
    ),
    options.clearAttribute && deps.db ? clearedCustomers(deps.db, ids) : Promise.resolve(new Set<string>()),
  ]);
  const committed = await Promise.all(
    customers.map((customer) =>
      importCustomer(
        run,
        customer,
        facts.imported.get(customer.customerId),
        facts.purchases.get(customer.userId),
      ),
    ),
  );
  if (!options.apply || !options.clearAttribute) return;
  for (const [i, customer] of customers.entries()) {
    if (committed[i] && customer.attribute && !cleared.has(customer.customerId)) await clear(run, customer);
  }
}

/** Decides one customer and, when applying, credits it; true when its import is committed (now or before). */
async function importCustomer(
  run: Run,
  customer: LegacyCustomer,
  importedAt: Date | undefined,
  purchases: PurchaseCredits | undefined,
): Promise<boolean> {
  const { report, options } = run;
  const t = report.totals;
  t.customers += 1;
  const { customerId, userId, attribute } = customer;
  if (customer.nearMatches.length > 0) report.nearMatches.push({ customerId, names: customer.nearMatches });
  const decide: Decide = (decision, extra = {}) =>
    options.onDecision?.({ customerId, userId, decision, value: attribute?.raw ?? null, ...extra });
  if (importedAt) {
    t.alreadyImported += 1;
    if (attribute?.updatedAtMs && attribute.updatedAtMs > importedAt.getTime()) {
      report.recreated.push({ customerId, updatedAt: new Date(attribute.updatedAtMs).toISOString() });
    }
    decide("already imported");
    return true;
  }
  const judgement = judge(attribute);
  if (judgement.verdict === "skip") {
    t[judgement.reason === "no attribute" ? "noAttribute" : judgement.reason] += 1;
    decide(judgement.reason);
    return false;
  }
  if (judgement.verdict === "refuse") return refuse(report, customer, judgement.reason, decide);
  const amounts = subtractPurchases(run, customer, judgement.tokens, purchases);
  const { tokens } = amounts;
  if (tokens === 0) {
    t.coveredByPurchases += 1;
    decide("nothing left: already credited by purchases", amounts);
    return false;
  }
  const { refused, flags } = limitAndFlags(tokens, options.rules, purchases?.allTokens ?? 0);
  if (refused) return refuse(report, customer, refused, decide);
  if (isAnonymousId(userId)) {
    t.anonymous += 1;
    report.anonymous.push({
      customerId,
      tokens,
      imported: Boolean(options.includeAnonymous) && options.apply,
    });
    if (!options.includeAnonymous) {
      t.heldAnonymous += 1;
      decide("held: anonymous id", amounts);
      return false;
    }
  }
  if (flags.length > 0) {
    t.flagged += 1;
    report.flagged.push({
      customerId,
      userId,
      tokens,
      flags,
      imported: Boolean(options.includeFlagged) && options.apply,
    });
    if (!options.includeFlagged) {
      t.heldFlagged += 1;
      decide("held: flagged", { ...amounts, flags });
      return false;
    }
  }
  if (!options.apply) {
    credit(report, tokens);
    decide("would credit", { ...amounts, flags });
    return false;
  }
  return write(run, customer, amounts, decide);
}

/** What a value comes to once the purchases this ledger already credited the user are taken off. */
type Amounts = {
  /** The attribute's value. */
  readonly attributeTokens: number;
  /** Tokens of purchases this ledger credited the user, taken off the value (0 with the subtraction off). */
  readonly alreadyCredited: number;
  /** What is imported: the value less what was already credited, never below 0. */
  readonly tokens: number;
};

function subtractPurchases(
  run: Run,
  customer: LegacyCustomer,
  attributeTokens: number,
  purchases: PurchaseCredits | undefined,
): Amounts {
  const subtract = run.options.subtractPurchases ?? true;
  const alreadyCredited = subtract ? (purchases?.windowTokens ?? 0) : 0;
  const tokens = Math.max(0, attributeTokens - alreadyCredited);
  if (alreadyCredited > 0) {
    const t = run.report.totals;
    t.reduced += 1;
    t.subtractedTokens += attributeTokens - tokens;
    run.report.reduced.push({ customerId: customer.customerId, attributeTokens, alreadyCredited, tokens });
  }
  return { attributeTokens, alreadyCredited, tokens };
}

async function write(run: Run, customer: LegacyCustomer, amounts: Amounts, decide: Decide): Promise<boolean> {
  const { options, report } = run;
  const ledger = run.deps.ledger as LedgerService;
  const attribute = customer.attribute;
  const { tokens, attributeTokens, alreadyCredited } = amounts;
  const metadata = {
    source: options.source,
    attribute: options.attribute,
    rawValue: attribute?.raw ?? null,
    updatedAt: attribute?.updatedAtMs ? new Date(attribute.updatedAtMs).toISOString() : null,
    customerId: customer.customerId,
    ...(alreadyCredited > 0 ? { attributeTokens, alreadyCredited } : {}),
  };
  const result = await ledger.importLegacy({ ...customer, tokens, metadata });
  if (result.status === "balance_limit")
    return refuse(report, customer, "the user's balance would pass the cap", decide);
  if (result.status === "already-imported") {
    report.totals.alreadyImported += 1;
    decide("already imported");
  } else {
    credit(report, tokens);
    decide("credited", { ...amounts, entryId: result.entry.id });
  }
  return true;
}

function credit(report: ImportReport, tokens: number): void {
  report.totals.credited += 1;
  report.totals.creditedTokens += tokens;
}

function refuse(report: ImportReport, customer: LegacyCustomer, reason: string, decide: Decide): false {
  report.totals.refused += 1;
  const { customerId, userId } = customer;
  report.refused.push({ customerId, userId, value: customer.attribute?.raw ?? null, reason });
  decide("refused", { reason });
  return false;
}

/** Deletes the attribute once its import has committed; a failure is reported and retried next run. */
async function clear(run: Run, customer: LegacyCustomer): Promise<void> {
  const { deps, options, report } = run;
  if (!deps.api || !deps.db)
    throw new Error("clearing the attribute needs the RevenueCat API and the database");
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
