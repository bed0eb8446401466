import { and, desc, eq, inArray, lt, or, type SQL } from "drizzle-orm";
import type { Executor } from "../../db/client.js";
import { revenuecatEventsTable, WEBHOOK_OUTCOMES, type WebhookOutcome } from "../../db/schema.js";

/** Reads of the kept RevenueCat deliveries for operators (the console); they write nothing. */

export type Delivery = typeof revenuecatEventsTable.$inferSelect;

/**
 * What an operator filters by: a recorded outcome (`held` is a purchase its early refund kept from
 * crediting), or `attention` (failed, unmapped and held).
 */
export const DELIVERY_FILTERS = [...WEBHOOK_OUTCOMES, "attention"] as const;
export type DeliveryFilter = (typeof DELIVERY_FILTERS)[number];

export interface DeliveryQuery {
  readonly filter?: DeliveryFilter | undefined;
  readonly userId?: string | undefined;
  readonly receivedBefore?: Date | undefined;
  readonly limit: number;
}

function outcomeCondition(filter: DeliveryFilter): SQL | undefined {
  const outcome = revenuecatEventsTable.outcome;
  if (filter === "attention") {
    const attention: WebhookOutcome[] = ["failed", "unmapped", "held"];
    return inArray(outcome, attention);
  }
  return eq(outcome, filter);
}

/** Deliveries newest first, filtered by outcome and user (the app user id or the resolved one). */
export async function listDeliveries(db: Executor, query: DeliveryQuery): Promise<Delivery[]> {
  const table = revenuecatEventsTable;
  const conditions: (SQL | undefined)[] = [];
  if (query.filter) conditions.push(outcomeCondition(query.filter));
  if (query.userId) conditions.push(userCondition(query.userId));
  if (query.receivedBefore) conditions.push(lt(table.receivedAt, query.receivedBefore));
  return db
    .select()
    .from(table)
    .where(and(...conditions))
    .orderBy(desc(table.receivedAt), desc(table.eventId))
    .limit(query.limit);
}

function userCondition(userId: string): SQL {
  const table = revenuecatEventsTable;
  return or(eq(table.userId, userId), eq(table.appUserId, userId)) as SQL;
}

export function isHeld(delivery: Pick<Delivery, "outcome" | "detail">): boolean {
  return delivery.outcome === "held";
}

export async function getDelivery(db: Executor, eventId: string): Promise<Delivery | null> {
  const [row] = await db
    .select()
    .from(revenuecatEventsTable)
    .where(eq(revenuecatEventsTable.eventId, eventId));
  return row ?? null;
}
