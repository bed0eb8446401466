import { inArray } from "drizzle-orm";
import type { Database } from "../../db/client.js";
import { revenuecatEventsTable } from "../../db/schema.js";
import { decide, type PurchasePolicyConfig } from "./purchase.policy.js";
import { revenuecatDeliverySchema } from "./revenuecat.event.js";
import { REPROCESSABLE } from "./webhook-inbox.js";

/** One kept unmapped or failed event, and what reprocessing it with today's map would do. */
export interface ReprocessCandidate {
  readonly eventId: string;
  readonly type: string;
  readonly productId: string | null;
  readonly userId: string | null;
  /** unmapped or failed. */
  readonly was: string;
  /** credit, unmapped, refund, reverse, ignore or fail (as the policy decides it now). */
  readonly wouldDo: string;
  readonly detail: string;
}

/** The events `reprocess` would pick up, oldest first, each with today's decision; writes nothing. */
export async function reprocessCandidates(
  db: Database,
  config: PurchasePolicyConfig,
): Promise<ReprocessCandidate[]> {
  const rows = await db
    .select({
      eventId: revenuecatEventsTable.eventId,
      type: revenuecatEventsTable.type,
      productId: revenuecatEventsTable.productId,
      userId: revenuecatEventsTable.userId,
      outcome: revenuecatEventsTable.outcome,
      rawBody: revenuecatEventsTable.rawBody,
    })
    .from(revenuecatEventsTable)
    .where(inArray(revenuecatEventsTable.outcome, [...REPROCESSABLE]))
    .orderBy(revenuecatEventsTable.receivedAt);
  return rows.map((row) => {
    const base = { eventId: row.eventId, type: row.type, productId: row.productId, userId: row.userId };
    const parsed = revenuecatDeliverySchema.safeParse(JSON.parse(row.rawBody));
    if (!parsed.success)
      return { ...base, was: row.outcome, wouldDo: "skip", detail: "stored body unreadable" };
    const decision = decide(parsed.data.event, config);
    const detail =
      decision.action === "credit"
        ? `${decision.tokens} tokens to ${decision.userId}`
        : "reason" in decision
          ? decision.reason
          : `store transaction ${decision.storeRef ?? "(none)"}`;
    return { ...base, was: row.outcome, wouldDo: decision.action, detail };
  });
}
