import { inArray } from "drizzle-orm";
import type { Database } from "../../db/client.js";
import { legacyAttributeClearsTable } from "../../db/schema.js";

/** Which legacy attributes were deleted from RevenueCat after their import, so a later run skips them. */
export async function clearedCustomers(db: Database, customerIds: readonly string[]): Promise<Set<string>> {
  if (customerIds.length === 0) return new Set();
  const rows = await db
    .select({ customerId: legacyAttributeClearsTable.customerId })
    .from(legacyAttributeClearsTable)
    .where(inArray(legacyAttributeClearsTable.customerId, [...customerIds]));
  return new Set(rows.map((row) => row.customerId));
}

export async function recordCleared(db: Database, customerId: string, attribute: string): Promise<void> {
  await db.insert(legacyAttributeClearsTable).values({ customerId, attribute }).onConflictDoNothing();
}
