import type { DatabaseHandle } from "../../db/client.js";
import { MAX_BALANCE } from "../../db/schema.js";
import { APPLY_STATEMENT, type ChangeRequest, encodeRequests, type OutcomeRow } from "./ledger.statements.js";

/**
 * One batch straight through ledger_apply, as one statement (its own transaction), answering its
 * outcome rows: for the benchmarks, which seed users without a store around them and measure the
 * money function without the group commit (src/scripts/bench/apply.ts). Every rule of the money
 * function applies.
 */
export function applyBatch(
  database: Pick<DatabaseHandle, "query">,
  requests: readonly ChangeRequest[],
): Promise<OutcomeRow[]> {
  return database.query<OutcomeRow>(APPLY_STATEMENT, [encodeRequests(requests), MAX_BALANCE]);
}

/**
 * Credits many lots at once, 500 changes a statement, straight through ledger_apply: for the
 * benchmarks (src/scripts/bench/lots.ts), which need users with expiring lots and no store around
 * them. Refusals are counted, not thrown.
 */
export async function seedCredits(
  database: Pick<DatabaseHandle, "query">,
  credits: readonly ChangeRequest[],
): Promise<{ applied: number; refused: number }> {
  let applied = 0;
  for (let i = 0; i < credits.length; i += 500) {
    const batch = credits.slice(i, i + 500).filter((credit) => credit.delta > 0);
    const rows = await applyBatch(database, batch);
    applied += rows.filter((row) => row.status === "applied").length;
  }
  return { applied, refused: credits.length - applied };
}
