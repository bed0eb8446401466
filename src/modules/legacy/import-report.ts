/** What an import run did (or, in a dry run, would do), customer by customer and in total. */
export interface ImportReport {
  readonly mode: "dry run" | "apply";
  readonly source: string;
  readonly attribute: string;
  readonly totals: Totals;
  readonly refused: { customerId: string; userId: string; value: unknown; reason: string }[];
  readonly flagged: {
    customerId: string;
    userId: string;
    tokens: number;
    flags: readonly string[];
    imported: boolean;
  }[];
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
  /** Flagged and, with --skip-flagged, not imported. */
  heldFlagged: number;
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
    totals,
    refused: [],
    flagged: [],
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
    `  flagged suspicious:  ${t.flagged}${t.heldFlagged ? ` (${t.heldFlagged} held back by --skip-flagged)` : ""}`,
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
