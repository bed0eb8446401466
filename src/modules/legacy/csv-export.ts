import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import type { Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import { parse } from "csv-parse";
import { isStorableText } from "../../db/text.js";
import { type LegacyCustomer, pickAttribute, type SourceItem } from "./legacy-source.js";
import { fromExportCell, type LegacyAttribute } from "./legacy-value.js";

/** The file is not a Customer Lists export this reader can take: nothing is read from it. */
export class ExportFormatError extends Error {
  override readonly name = "ExportFormatError";
}

/** The columns a Customer Lists export must have. */
const REQUIRED_COLUMNS = ["app_user_id", "custom_attributes"] as const;

/**
 * Reads a RevenueCat dashboard Customer Lists export: a CSV (gzipped as downloaded, or plain) with `;`
 * between fields, fields optionally quoted (a quoted field may hold `;` and doubled quotes), an
 * `app_user_id` column and a `custom_attributes` column holding a JSON object of the customer's
 * custom attributes. A header without those columns (another separator, another file) is an
 * ExportFormatError before anything is read; a line that does not parse is a malformed item.
 *
 * A customer listed on more than one line is taken once, from its newest line: the one whose
 * attribute was set last (`updated_at_ms`), else the one last seen (`last_seen_at`), else the later
 * line; the others come out as duplicate items. That takes two passes over the file, so a file of
 * any size still streams, keeping only each customer's winning line in memory.
 */
export async function* readCustomerExport(path: string, attributeName: string): AsyncGenerator<SourceItem> {
  const newest = new Map<string, Recency>();
  for await (const { item, recency } of readLines(path, attributeName)) {
    if (item.kind !== "customer" || !recency) continue;
    const id = item.customer.customerId;
    const kept = newest.get(id);
    if (!kept || isNewer(recency, kept)) newest.set(id, recency);
  }
  for await (const { item, recency } of readLines(path, attributeName)) {
    const id = item.kind === "customer" ? item.customer.customerId : null;
    const kept = id === null ? undefined : newest.get(id);
    if (id !== null && kept && recency && kept.line !== recency.line) {
      yield { kind: "duplicate", id, line: recency.line, keptLine: kept.line };
    } else yield item;
  }
}

/**
 * Throws ExportFormatError when the file is not a Customer Lists export, reading no further than its
 * first line: a wrong file is refused before the command opens (and locks) any database.
 */
export async function checkCustomerExport(path: string, attributeName: string): Promise<void> {
  for await (const _line of readLines(path, attributeName)) return;
}

/** How recent a customer's line is, to pick the newest of a customer listed twice. */
interface Recency {
  readonly line: number;
  readonly updatedAtMs: number | null;
  readonly lastSeenMs: number | null;
}

function isNewer(a: Recency, b: Recency): boolean {
  if (a.updatedAtMs !== null && b.updatedAtMs !== null && a.updatedAtMs !== b.updatedAtMs)
    return a.updatedAtMs > b.updatedAtMs;
  if (a.lastSeenMs !== null && b.lastSeenMs !== null && a.lastSeenMs !== b.lastSeenMs)
    return a.lastSeenMs > b.lastSeenMs;
  return a.line > b.line;
}

/** A timestamp cell: milliseconds since the epoch, or a date the Date parser reads; null otherwise. */
function timestampOf(cell: string | undefined): number | null {
  const text = cell?.trim();
  if (!text) return null;
  if (/^\d+$/.test(text)) return Number(text);
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? null : ms;
}

/** One pass over the file: each line as a source item, with its recency when it names a customer. */
async function* readLines(
  path: string,
  attributeName: string,
): AsyncGenerator<{ item: SourceItem; recency: Recency | null }> {
  // Lines that did not parse, told by the parser as it meets them (ahead of the records it still
  // holds), and put back in their place by line number.
  const skipped: { kind: "malformed"; line: number; reason: string }[] = [];
  let header = false;
  const parser = (await openMaybeGzipped(path)).pipe(
    parse({
      delimiter: ";",
      columns: (names: string[]) => {
        header = true;
        return checkHeader(names);
      },
      bom: true,
      skip_empty_lines: true,
      relax_column_count: true,
      info: true,
      // A line that does not parse (a stray quote) is reported with its number, not the end of the run.
      skip_records_with_error: true,
      on_skip: (error) => {
        const line = (error as { lines?: number } | undefined)?.lines ?? 0;
        skipped.push({ kind: "malformed", line, reason: error?.message ?? "does not parse" });
      },
    }),
  );
  type Parsed = { record: Record<string, string | undefined>; info: { lines: number } };
  for await (const { record, info } of parser as AsyncIterable<Parsed>) {
    while (skipped[0] && skipped[0].line < info.lines)
      yield { item: skipped.shift() as SourceItem, recency: null };
    const item = customerOf(record, attributeName, info.lines);
    const recency =
      item.kind === "customer"
        ? {
            line: info.lines,
            updatedAtMs: item.customer.attribute?.updatedAtMs ?? null,
            lastSeenMs: timestampOf(record.last_seen_at),
          }
        : null;
    yield { item, recency };
  }
  for (const item of skipped.splice(0)) yield { item, recency: null };
  if (!header)
    throw new ExportFormatError("the file is empty: no header line, so not a Customer Lists export");
}

/** The header line as column names, or an ExportFormatError saying what is wrong with it. */
function checkHeader(header: string[]): string[] {
  const names = header.map((name) => name.trim());
  const missing = REQUIRED_COLUMNS.filter((column) => !names.includes(column));
  if (missing.length === 0) return names;
  const first = names[0] ?? "";
  const separator = names.length === 1 ? [",", "\t", "|"].find((s) => first.includes(s)) : undefined;
  if (separator) {
    throw new ExportFormatError(
      `the header has one column and "${separator === "\t" ? "\\t" : separator}" between names: ` +
        "a Customer Lists export has ';' between fields (export it again from the dashboard, or convert the file)",
    );
  }
  const shown = names.slice(0, 8).join(", ") + (names.length > 8 ? ", ..." : "");
  throw new ExportFormatError(
    `no ${missing.join(" and no ")} column (the header names: ${shown}): not a Customer Lists export`,
  );
}

function customerOf(
  record: Record<string, string | undefined>,
  attributeName: string,
  line: number,
): SourceItem {
  const appUserId = record.app_user_id?.trim();
  if (!appUserId) return { kind: "malformed", line, reason: "no app_user_id" };
  if (!isStorableText(appUserId) || appUserId.length > 255) {
    return { kind: "malformed", line, reason: "app_user_id is not a storable user id" };
  }
  const attributes = parseAttributes(record.custom_attributes);
  if (attributes === null)
    return { kind: "malformed", line, reason: "custom_attributes is not a JSON object" };
  const { attribute, nearMatches } = pickAttribute(attributes, attributeName);
  const customer: LegacyCustomer = { customerId: appUserId, userId: appUserId, attribute, nearMatches };
  return { kind: "customer", customer };
}

/** The custom_attributes cell as a map; an empty cell is no attributes, anything but an object null. */
function parseAttributes(cell: string | undefined): Map<string, LegacyAttribute> | null {
  if (!cell || cell.trim() === "") return new Map();
  let value: unknown;
  try {
    value = JSON.parse(cell);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  return new Map(Object.entries(value).map(([name, raw]) => [name, fromExportCell(raw)]));
}

/** The file as a stream, gunzipped when it starts with gzip's magic bytes (whatever its name). */
export async function openMaybeGzipped(path: string): Promise<Readable> {
  const handle = await open(path, "r");
  const magic = Buffer.alloc(2);
  try {
    await handle.read(magic, 0, 2, 0);
  } finally {
    await handle.close();
  }
  const stream = createReadStream(path);
  return magic[0] === 0x1f && magic[1] === 0x8b ? stream.pipe(createGunzip()) : stream;
}
