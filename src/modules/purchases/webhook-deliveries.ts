import { sql } from "drizzle-orm";
import { type DatabaseHandle, type Executor, queryRows } from "../../db/client.js";
import { createGroupCommit, type GroupCommitOptions } from "../../db/group-commit.js";
import { MAX_BALANCE, type WebhookOutcome } from "../../db/schema.js";
import type { Decision, LotTerms } from "./purchase.policy.js";
import { purchaseMetadata, type RevenuecatEvent } from "./revenuecat.event.js";
import { type DeliveryResult, eventColumnsByName } from "./webhook-inbox.js";

// The purchase path's one statement, revenuecat_record (src/modules/purchases/sql/revenuecat_record.sql):
// it claims an event, holds a purchase back or credits it through the ledger's own statement, and
// records the outcome. The webhook's common deliveries (a purchase, or an event that moves nothing)
// go through it in batches, by group commit as in the ledger writer; a refund's or reversal's claim,
// a reprocessed event and a released purchase go through it inside the caller's transaction.

/** What revenuecat_record carries out: a credit, an outcome to record as it is, or a claim alone. */
export type RecordedDecision =
  | Exclude<Decision, { action: "refund" | "reverse" | "extend" | "cut" }>
  | { readonly action: "claim" };

/**
 * How the delivery comes: as it arrives (claim the event first), reprocessed (already claimed by
 * claimForReprocess), or released (a purchase its refund held back, credited now that the refund was
 * reversed).
 */
export type DeliveryVia = "deliver" | "reprocess" | "release";

export interface Delivery {
  readonly rawBody: string;
  readonly event: RevenuecatEvent;
  readonly decision: RecordedDecision;
  readonly via?: DeliveryVia;
}

export interface DeliveryWriter {
  /** Records one delivery, batched with those that arrive with it; resolves once it has committed. */
  record(delivery: Delivery): Promise<DeliveryResult>;
  /** Records one delivery inside the caller's transaction. */
  recordIn(tx: Executor, delivery: Delivery): Promise<DeliveryResult>;
}

interface DeliveryRow {
  ord: number;
  outcome: WebhookOutcome;
  detail: string | null;
  user_id: string | null;
  ledger_entry_id: string | number | null;
  tokens: number | null;
  /** The ledger's status of a credit: applied, duplicate or limit. */
  credit_status: string | null;
}

const RECORD_STATEMENT = "SELECT * FROM revenuecat_record($1::jsonb, $2::integer)";

export function createDeliveryWriter(
  database: Pick<DatabaseHandle, "query">,
  options: Omit<GroupCommitOptions, "retry"> = {},
): DeliveryWriter {
  const group = createGroupCommit(async (items: readonly string[]) => {
    const rows = await database.query<DeliveryRow>(RECORD_STATEMENT, [`[${items.join(",")}]`, MAX_BALANCE]);
    const results = new Array<DeliveryResult>(items.length);
    for (const row of rows) results[row.ord] = resultOf(row);
    return results;
  }, options);

  return {
    record: (delivery) => group.submit(encode(delivery)),
    async recordIn(tx, delivery) {
      const [row] = await queryRows<DeliveryRow>(
        tx,
        sql`SELECT * FROM revenuecat_record(${`[${encode(delivery)}]`}::jsonb, ${MAX_BALANCE}::integer)`,
      );
      if (!row) throw new Error(`revenuecat_record gave no outcome for event ${delivery.event.id}`);
      return resultOf(row);
    },
  };
}

/**
 * One delivery as JSON. Encoded when it arrives, so a batch is joined, not re-encoded; its position
 * in the batch is its `ord`, as `[`...`]` keeps order.
 */
function encode({ rawBody, event, decision, via = "deliver" }: Delivery): string {
  const common = { ...eventColumnsByName(event, rawBody), via };
  switch (decision.action) {
    case "claim":
      return JSON.stringify({ ...common, action: "claim" });
    case "credit":
      return JSON.stringify({
        ...common,
        action: "credit",
        user_id: decision.userId,
        tokens: decision.tokens,
        store_ref: decision.storeRef,
        description: `${event.type} ${event.product_id}`,
        metadata: purchaseMetadata(event),
        ...lotFields(decision.lot),
      });
    case "unmapped":
      return record(common, "unmapped", decision.reason, decision.userId);
    case "ignore":
      return record(common, "ignored", decision.reason, null);
    case "fail":
      return record(common, "failed", decision.reason, null);
  }
}

/** The lot a subscription credit opens, as the money function's request fields (none: a pack's lot). */
function lotFields(lot: LotTerms | undefined): Record<string, unknown> {
  if (!lot) return {};
  return {
    lot_source: lot.source,
    lot_chain: lot.chain,
    lot_product: lot.product,
    lot_starts_at: lot.startsAt,
    lot_expires_at: lot.expiresAt,
    lot_rollover: lot.rollover,
    lot_supersede: lot.supersede,
  };
}

function record(common: object, outcome: WebhookOutcome, detail: string, userId: string | null): string {
  return JSON.stringify({ ...common, action: "record", outcome, detail, user_id: userId });
}

function resultOf(row: DeliveryRow): DeliveryResult {
  return {
    outcome: row.outcome,
    detail: row.detail ?? "",
    userId: row.user_id,
    ledgerEntryId: row.ledger_entry_id === null ? null : Number(row.ledger_entry_id),
    ...(row.tokens === null ? {} : { tokens: row.tokens }),
    ...(row.credit_status === "limit" ? { atBalanceLimit: true } : {}),
  };
}
