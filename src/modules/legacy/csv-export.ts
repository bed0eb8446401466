import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import type { Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import { parse } from "csv-parse";
import { isStorableText } from "../../db/text.js";
import { type LegacyCustomer, pickAttribute, type SourceItem } from "./legacy-source.js";
import { fromExportCell, type LegacyAttribute } from "./legacy-value.js";

/**
 * Reads a RevenueCat dashboard Customer Lists export: a CSV (gzipped as downloaded, or plain) with `;`
 * between fields, fields optionally quoted (a quoted field may hold `;` and doubled quotes), an
 * `app_user_id` column and a `custom_attributes` column holding a JSON object of the customer's
 * custom attributes. Streams, so a file of any size reads in constant memory.
 */
export async function* readCustomerExport(path: string, attributeName: string): AsyncGenerator<SourceItem> {
  const parser = (await openMaybeGzipped(path)).pipe(
    parse({ delimiter: ";", columns: true, bom: true, skip_empty_lines: true, relax_column_count: true }),
  );
  let line = 1;
  for await (const record of parser as AsyncIterable<Record<string, string | undefined>>) {
    line += 1;
    const item = customerOf(record, attributeName, line);
    if (item) yield item;
  }
}

function customerOf(
  record: Record<string, string | undefined>,
  attributeName: string,
  line: number,
): SourceItem | null {
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
async function openMaybeGzipped(path: string): Promise<Readable> {
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
