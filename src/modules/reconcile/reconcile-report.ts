import { gte, or } from "drizzle-orm";
import type { Executor } from "../../db/client.js";
import { revenuecatEventsTable } from "../../db/schema.js";
import { usersWithEntriesSince } from "../ledger/ledger.reconcile-reads.js";
import type { ReconcileSummary } from "./reconcile.service.js";
import { INCOMPLETE_OUTCOMES, type ReconcileOutcome } from "./reconcile-outcomes.js";

/** How each outcome reads in the summary, in the order it is listed. */
const LABELS: Record<ReconcileOutcome, string> = {
  credited: "credited (missing, now credited)",
  missing_credit: "missing (credited with --apply)",
  already_credited: "already credited",
  refunded_not_clawed_back: "refunded upstream, not clawed back",
  clawed_back: "refunded upstream, now clawed back",
  already_refunded: "refunded upstream and here",
  refunded_before_credit: "refunded before it was credited",
  pending_delivery: "pending delivery (inside the margin)",
  unknown_product: "unknown product",
  sandbox: "sandbox (environment not accepted)",
  not_creditable: "not creditable (promotional, no id)",
  not_in_revenuecat: "not in RevenueCat",
  unknown_customer: "no such customer in RevenueCat",
  could_not_be_read: "could not be read",
  failed: "failed to apply",
};

/** The text summary the command prints. */
export function formatSummary(summary: ReconcileSummary, seconds: number): string {
  const width = Math.max(...Object.values(LABELS).map((label) => label.length)) + 2;
  const lines = [
    `reconcile (${summary.mode}${summary.refunds ? ", refunds" : ""}): ${summary.transactions} transactions in ${seconds.toFixed(1)} s`,
  ];
  for (const [outcome, label] of Object.entries(LABELS) as [ReconcileOutcome, string][]) {
    const count = summary.counts[outcome];
    if (count > 0 || outcome === "credited" || outcome === "missing_credit") {
      lines.push(`  ${`${label}:`.padEnd(width)}${count}`);
    }
  }
  lines.push(
    `  tokens ${summary.mode === "apply" ? "credited" : "missing"}: ${summary.creditedTokens}; ` +
      `refunded upstream ${summary.refunds ? "and clawed back" : "but not clawed back"}: ${summary.clawedBackTokens}`,
  );
  return lines.join("\n");
}

/** Whether the run left something it could not read or apply (exit code 3). */
export function isIncomplete(summary: ReconcileSummary): boolean {
  return INCOMPLETE_OUTCOMES.some((outcome) => summary.counts[outcome] > 0);
}

/**
 * Our users active since `since`: a RevenueCat delivery named them, or the ledger wrote an entry of
 * theirs. The `--since` sweep and the scheduled sweep read these from RevenueCat.
 */
export async function activeUsersSince(db: Executor, since: Date): Promise<string[]> {
  const events = await db
    .select({ userId: revenuecatEventsTable.userId, appUserId: revenuecatEventsTable.appUserId })
    .from(revenuecatEventsTable)
    .where(or(gte(revenuecatEventsTable.receivedAt, since), gte(revenuecatEventsTable.processedAt, since)));
  const users = new Set<string>();
  for (const row of events) {
    const id = row.userId ?? row.appUserId;
    if (id) users.add(id);
  }
  for (const id of await usersWithEntriesSince(db, since)) users.add(id);
  return [...users].sort();
}
