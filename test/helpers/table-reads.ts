import { sql } from "drizzle-orm";
import { type Executor, queryRows } from "../../src/db/client.js";

/**
 * How many times `work` read each of `tables` whole (sequential scans), run inside the transaction
 * of `executor`: the difference of the connection's own counts (pg_stat_xact_user_tables) before and
 * after. A count the connection has not published yet may include its earlier transactions; the
 * difference is this one's, on PGlite and PostgreSQL alike, whatever the other connections did.
 */
export async function wholeTableReads(
  executor: Executor,
  tables: readonly string[],
  work: () => Promise<void>,
): Promise<Record<string, number>> {
  const counts = async () =>
    new Map(
      (
        await queryRows<{ relname: string; n: string }>(
          executor,
          sql`SELECT relname, seq_scan AS n FROM pg_stat_xact_user_tables WHERE relname IN ${[...tables]}`,
        )
      ).map((row) => [row.relname, Number(row.n)]),
    );
  const before = await counts();
  await work();
  const after = await counts();
  // A table the view does not list counts as NaN, so an expectation of 0 fails rather than passes.
  return Object.fromEntries(
    tables.map((table) => [table, (after.get(table) ?? Number.NaN) - (before.get(table) ?? Number.NaN)]),
  );
}
