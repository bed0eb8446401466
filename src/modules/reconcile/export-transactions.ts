import { parse } from "csv-parse";
import { isStorableText } from "../../db/text.js";
import { openMaybeGzipped } from "../legacy/csv-export.js";
import { ourUserId, timeMs, type UpstreamPurchase, upper } from "./upstream-purchase.js";

/**
 * Reads a RevenueCat Scheduled Data Export of transactions: a CSV with `,` between fields (gzipped
 * as delivered, or plain), one line per transaction version. A transaction changes between
 * deliveries (a refund sets `refunded_at`), so each is taken from its newest line by `updated_at`
 * (then the later line); Stripe reuses `store_transaction_id` across renewals, so `renewal_number`
 * is part of a transaction's identity. The rows of one file are held in memory, one entry per
 * transaction (100,000 transactions take some tens of megabytes).
 */

/** The export is not a transactions export this reader can take: nothing is read from it. */
export class ExportFileError extends Error {
  override readonly name = "ExportFileError";
}

export type ExportItem =
  | { readonly kind: "purchase"; readonly purchase: UpstreamPurchase }
  | { readonly kind: "unreadable"; readonly id: string; readonly reason: string };

const REQUIRED_COLUMNS = ["store", "store_transaction_id", "product_identifier"] as const;
const USER_COLUMNS = ["rc_last_seen_app_user_id_alias", "rc_original_app_user_id", "app_user_id"] as const;

type Row = Record<string, string | undefined>;

export async function* readTransactionExport(
  path: string,
  /** Told the number of lines read so far, every 10,000 lines (the file is read whole first). */
  onLines?: (lines: number) => void,
): AsyncGenerator<ExportItem> {
  const newest = new Map<string, { purchase: UpstreamPurchase; updatedAtMs: number; line: number }>();
  const problems: ExportItem[] = [];
  let header = false;
  const parser = (await openMaybeGzipped(path)).pipe(
    parse({
      delimiter: ",",
      columns: (names: string[]) => {
        header = true;
        return checkHeader(names);
      },
      bom: true,
      skip_empty_lines: true,
      relax_column_count: true,
      info: true,
      skip_records_with_error: true,
      on_skip: (error) => {
        const line = (error as { lines?: number } | undefined)?.lines ?? 0;
        problems.push({ kind: "unreadable", id: `line ${line}`, reason: error?.message ?? "does not parse" });
      },
    }),
  );
  for await (const { record, info } of parser as AsyncIterable<{ record: Row; info: { lines: number } }>) {
    if (info.lines % 10_000 === 0) onLines?.(info.lines);
    const read = purchaseOf(record, info.lines);
    if (typeof read === "string") {
      problems.push({ kind: "unreadable", id: `line ${info.lines}`, reason: read });
      continue;
    }
    const key = `${read.store}:${read.transactionId ?? `line ${info.lines}`}:${record.renewal_number ?? ""}`;
    const updatedAtMs = timeMs(record.updated_at) ?? 0;
    const kept = newest.get(key);
    if (!kept || updatedAtMs >= kept.updatedAtMs)
      newest.set(key, { purchase: read, updatedAtMs, line: info.lines });
  }
  if (!header) throw new ExportFileError("the file is empty: no header line, so not a transactions export");
  for (const { purchase } of newest.values()) yield { kind: "purchase", purchase };
  yield* problems;
}

/** Reads the header only: a wrong file is refused before any database is opened. */
export async function checkTransactionExport(path: string): Promise<void> {
  const parser = (await openMaybeGzipped(path)).pipe(
    parse({ delimiter: ",", bom: true, to_line: 1, relax_column_count: true }),
  );
  for await (const names of parser as AsyncIterable<string[]>) {
    checkHeader(names);
    return;
  }
  throw new ExportFileError("the file is empty: no header line, so not a transactions export");
}

function checkHeader(header: string[]): string[] {
  const names = header.map((name) => name.trim());
  const missing = REQUIRED_COLUMNS.filter((column) => !names.includes(column));
  if (!names.some((name) => (USER_COLUMNS as readonly string[]).includes(name))) {
    missing.push("rc_original_app_user_id" as never);
  }
  if (missing.length === 0) return names;
  const shown = names.slice(0, 8).join(", ") + (names.length > 8 ? ", ..." : "");
  throw new ExportFileError(
    `no ${missing.join(" and no ")} column (the header names: ${shown}): not a Scheduled Data Export of transactions with ',' between fields`,
  );
}

/** One line as a purchase, or why it cannot be one. */
function purchaseOf(record: Row, line: number): UpstreamPurchase | string {
  const userId = ourUserId(...USER_COLUMNS.map((column) => record[column]?.trim()));
  if (!userId) return "no app user id";
  if (!isStorableText(userId) || userId.length > 255) return "the app user id is not a storable user id";
  const store = upper(record.store);
  if (!store) return "no store";
  const renewing = record.is_auto_renewable?.trim().toLowerCase() === "true";
  const firstPeriod = (record.renewal_number?.trim() || "1") === "1";
  return {
    userId,
    store,
    transactionId: record.store_transaction_id?.trim() || null,
    productId: record.product_identifier?.trim() || null,
    environment: record.is_sandbox?.trim().toLowerCase() === "true" ? "SANDBOX" : "PRODUCTION",
    refunded: Boolean(record.refunded_at?.trim()),
    type: !renewing ? "NON_RENEWING_PURCHASE" : firstPeriod ? "INITIAL_PURCHASE" : "RENEWAL",
    purchasedAtMs: timeMs(record.start_time ?? record.purchased_at),
    expirationAtMs: timeMs(record.expiration_at ?? record.end_time),
    ownership: upper(record.ownership_type) || "PURCHASED",
    source: `export:line ${line}`,
  };
}
