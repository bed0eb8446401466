import type { SourceItem } from "./legacy-source.js";

/** What an import run did (or, in a dry run, would do), customer by customer and in total. */
export interface ImportReport {
  readonly mode: "dry run" | "apply";
  readonly source: string;
  readonly attribute: string;
  /** Which purchase credits are taken off the values, in words (or that none are). */
  purchaseRule: string;
  readonly totals: Totals;
  readonly refused: { customerId: string; userId: string; value: unknown; reason: string }[];
  readonly flagged: {
    customerId: string;
    userId: string;
    tokens: number;
    flags: readonly string[];
    imported: boolean;
  }[];
  /** Customers whose import was lowered by the purchases this ledger had already credited them. */
  readonly reduced: {
    customerId: string;
    attributeTokens: number;
    alreadyCredited: number;
    tokens: number;
  }[];
  /** `$RCAnonymousID:` customers: no signed-in user has such an id, so they are held back by default. */
  readonly anonymous: { customerId: string; tokens: number; imported: boolean }[];
  /** Lines of a customer listed again, and the line whose value was taken instead. */
  readonly duplicates: { customerId: string; line: number; keptLine: number }[];
  readonly unreadable: { id: string; reason: string }[];
  readonly notFound: string[];
  readonly malformed: { line: number; reason: string }[];
  readonly clearFailed: { customerId: string; reason: string }[];
  readonly nearMatches: { customerId: string; names: readonly string[] }[];
  /** Imported earlier, yet the attribute was set again afterwards: an old app build still writes it. */
  readonly recreated: { customerId: string; updatedAt: string }[];
}

export interface Totals {
  customers: number;
  /** Customers credited by this run (in a dry run: that would be credited). */
  credited: number;
  creditedTokens: number;
  alreadyImported: number;
  refused: number;
  flagged: number;
  /** Flagged and, without --include-flagged, not imported. */
  heldFlagged: number;
  /** Customers whose value was lowered by purchases already credited here, and by how many tokens. */
  reduced: number;
  subtractedTokens: number;
  /** Lowered to nothing: every token of the value was already credited by purchases. */
  coveredByPurchases: number;
  /** `$RCAnonymousID:` customers with a value, and how many of them were held back. */
  anonymous: number;
  heldAnonymous: number;
  /** Lines that listed a customer again and lost to a newer line. */
  duplicates: number;
  noAttribute: number;
  empty: number;
  zero: number;
  notFound: number;
  unreadable: number;
  aliases: number;
  malformed: number;
  cleared: number;
  clearFailed: number;
}

export function emptyReport(mode: ImportReport["mode"], source: string, attribute: string): ImportReport {
  const totals: Totals = {
    customers: 0,
    credited: 0,
    creditedTokens: 0,
    alreadyImported: 0,
    refused: 0,
    flagged: 0,
    heldFlagged: 0,
    reduced: 0,
    subtractedTokens: 0,
    coveredByPurchases: 0,
    anonymous: 0,
    heldAnonymous: 0,
    duplicates: 0,
    noAttribute: 0,
    empty: 0,
    zero: 0,
    notFound: 0,
    unreadable: 0,
    aliases: 0,
    malformed: 0,
    cleared: 0,
    clearFailed: 0,
  };
  return {
    mode,
    source,
    attribute,
    purchaseRule: "purchases credited here before the run",
    totals,
    refused: [],
    flagged: [],
    reduced: [],
    anonymous: [],
    duplicates: [],
    unreadable: [],
    notFound: [],
    malformed: [],
    clearFailed: [],
    nearMatches: [],
    recreated: [],
  };
}

/** How many entries of each list the printed summary shows; --report keeps them all. */
const SHOWN = 20;

/** The report as a person reads it: totals first, then what needs a look, each list cut at SHOWN. */
export function formatReport(report: ImportReport): string {
  const t = report.totals;
  const verb = report.mode === "apply" ? "credited" : "would credit";
  const lines = [
    `Legacy import (${report.mode}) of attribute "${report.attribute}" from ${report.source}`,
    `  customers read:      ${t.customers}`,
    `  ${verb.padEnd(19)}  ${t.credited} customers, ${t.creditedTokens} tokens`,
    `  already imported:    ${t.alreadyImported}`,
    `  refused:             ${t.refused}`,
    `  already credited:    ${t.subtractedTokens} tokens subtracted from ${t.reduced} customers' values (${report.purchaseRule})` +
      (t.coveredByPurchases ? ` (${t.coveredByPurchases} left with nothing to import)` : ""),
    `  flagged suspicious:  ${t.flagged}${t.heldFlagged ? ` (${t.heldFlagged} held back: --include-flagged imports them)` : ""}`,
    `  anonymous ids:       ${t.anonymous}${t.heldAnonymous ? ` (${t.heldAnonymous} held back: --include-anonymous imports them)` : ""}`,
    `  listed twice:        ${t.duplicates} older lines skipped (the newest value was taken)`,
    `  nothing to import:   ${t.noAttribute} without the attribute, ${t.empty} empty, ${t.zero} zero`,
    `  not in RevenueCat:   ${t.notFound}; aliases of a customer already read: ${t.aliases}`,
    `  could not be read:   ${t.unreadable} ids, ${t.malformed} lines`,
    ...(t.cleared || t.clearFailed ? [`  attribute cleared:   ${t.cleared}, failed ${t.clearFailed}`] : []),
  ];
  const section = <T>(title: string, items: readonly T[], show: (item: T) => string) => {
    if (items.length === 0) return;
    lines.push(`\n${title}:`);
    for (const item of items.slice(0, SHOWN)) lines.push(`  ${show(item)}`);
    if (items.length > SHOWN)
      lines.push(`  ... and ${items.length - SHOWN} more (all of them with --report <file>)`);
  };
  section(
    "Refused (never imported)",
    report.refused,
    (r) => `${r.customerId}: ${JSON.stringify(r.value)}: ${r.reason}`,
  );
  section(
    "Flagged suspicious",
    report.flagged,
    (f) => `${f.customerId}: ${f.tokens} tokens: ${f.flags.join("; ")}`,
  );
  section(
    "Lowered by purchases already credited here (value - already credited = imported)",
    report.reduced,
    (r) => `${r.customerId}: ${r.attributeTokens} - ${r.alreadyCredited} = ${r.tokens}`,
  );
  section(
    "Anonymous ids ($RCAnonymousID:, no signed-in user has them)",
    report.anonymous,
    (a) => `${a.customerId}: ${a.tokens} tokens${a.imported ? " (imported)" : ""}`,
  );
  section(
    "Listed twice (the older line was skipped)",
    report.duplicates,
    (d) => `${d.customerId}: line ${d.line} skipped, line ${d.keptLine} taken`,
  );
  section("Could not be read (run again to retry)", report.unreadable, (u) => `${u.id}: ${u.reason}`);
  section("Not a RevenueCat customer (nothing to import)", report.notFound, (id) => id);
  section("Malformed lines", report.malformed, (m) => `line ${m.line}: ${m.reason}`);
  section("Clearing failed (run again to retry)", report.clearFailed, (c) => `${c.customerId}: ${c.reason}`);
  section(
    "Attribute names that differ only in case",
    report.nearMatches,
    (n) => `${n.customerId}: ${n.names.join(", ")}`,
  );
  section(
    "Set again after its import (an old app build?)",
    report.recreated,
    (r) => `${r.customerId}: ${r.updatedAt}`,
  );
  return lines.join("\n");
}

/** Counts and lists an id or a line that gave no customer, and tells the report file about it. */
export function recordNonCustomer(
  report: ImportReport,
  item: Exclude<SourceItem, { kind: "customer" }>,
  onDecision: ((decision: Record<string, unknown>) => void) | undefined,
): void {
  const t = report.totals;
  switch (item.kind) {
    case "not-found":
      t.notFound += 1;
      report.notFound.push(item.id);
      onDecision?.({ userId: item.id, decision: "not a RevenueCat customer" });
      return;
    case "unreadable":
      t.unreadable += 1;
      report.unreadable.push({ id: item.id, reason: item.reason });
      onDecision?.({ userId: item.id, decision: "unreadable", reason: item.reason });
      return;
    case "alias":
      t.aliases += 1;
      onDecision?.({ userId: item.id, customerId: item.customerId, decision: "alias already read" });
      return;
    case "malformed":
      t.malformed += 1;
      report.malformed.push({ line: item.line, reason: item.reason });
      onDecision?.({ line: item.line, decision: "malformed", reason: item.reason });
      return;
    case "duplicate":
      t.duplicates += 1;
      report.duplicates.push({ customerId: item.id, line: item.line, keptLine: item.keptLine });
      onDecision?.({
        customerId: item.id,
        userId: item.id,
        line: item.line,
        decision: "listed again: a newer line was taken",
        keptLine: item.keptLine,
      });
      return;
  }
}
