import type { DatabaseHandle } from "../../db/client.js";
import { createGroupCommit, type GroupCommitOptions } from "../../db/group-commit.js";
import { MAX_BALANCE, type WebhookOutcome } from "../../db/schema.js";
import type { Decision } from "./purchase.policy.js";
import type { RevenuecatEvent } from "./revenuecat.event.js";
import { type DeliveryResult, eventColumnsByName } from "./webhook-inbox.js";

/** A decision this path carries out: a credit, or an outcome to record as it is. */
export type RecordedDecision = Exclude<Decision, { action: "refund" | "reverse" }>;

interface DeliveryRow {
  ord: number;
  outcome: WebhookOutcome;
  detail: string;
  user_id: string | null;
  ledger_entry_id: string | number | null;
  tokens: number | null;
}

const RECORD_STATEMENT = "SELECT * FROM revenuecat_record($1::jsonb, $2::integer)";

/**
 * The common deliveries (a purchase to credit, or an event to record as ignored, unmapped or failed)
 * in as few round trips as there can be: each batch of deliveries that arrive together is one
 * prepared statement, revenuecat_record (drizzle/0006), which claims every event, holds back a
 * purchase whose refund came first, credits the rest through the ledger's own statement, and records
 * each outcome, all committed at once. Group commit as in the ledger writer.
 */
export function createDeliveryWriter(
  database: Pick<DatabaseHandle, "query">,
  options: Omit<GroupCommitOptions, "retry"> = {},
) {
  const group = createGroupCommit(async (items: readonly string[]) => {
    const rows = await database.query<DeliveryRow>(RECORD_STATEMENT, [`[${items.join(",")}]`, MAX_BALANCE]);
    const results = new Array<DeliveryResult>(items.length);
    for (const row of rows) results[row.ord] = resultOf(row);
    return results;
  }, options);

  return {
    /** Records one delivery as the policy decided; resolves once it has committed. */
    record(
      rawBody: string,
      event: RevenuecatEvent,
      decision: RecordedDecision,
      metadata: Record<string, unknown>,
    ) {
      return group.submit(encode(rawBody, event, decision, metadata));
    },
  };
}

/**
 * One delivery as JSON, with a placeholder for its position in the batch. Encoded when it arrives,
 * so a batch is joined, not re-encoded; `ord` is filled in by position, as `[`...`]` keeps order.
 */
function encode(
  rawBody: string,
  event: RevenuecatEvent,
  decision: RecordedDecision,
  metadata: Record<string, unknown>,
) {
  const common = eventColumnsByName(event, rawBody);
  if (decision.action === "credit") {
    const { userId, tokens, storeRef } = decision;
    const description = `${event.type} ${event.product_id}`;
    return JSON.stringify({
      ...common,
      action: "credit",
      user_id: userId,
      tokens,
      store_ref: storeRef,
      description,
      metadata,
    });
  }
  const outcome =
    decision.action === "ignore" ? "ignored" : decision.action === "fail" ? "failed" : "unmapped";
  const userId = decision.action === "unmapped" ? decision.userId : null;
  return JSON.stringify({ ...common, action: "record", outcome, detail: decision.reason, user_id: userId });
}

function resultOf(row: DeliveryRow): DeliveryResult {
  return {
    outcome: row.outcome,
    detail: row.detail,
    userId: row.user_id,
    ledgerEntryId: row.ledger_entry_id === null ? null : Number(row.ledger_entry_id),
    ...(row.tokens === null ? {} : { tokens: row.tokens }),
  };
}
