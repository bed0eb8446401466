import type { DatabaseHandle } from "../../db/client.js";
import { MAX_BALANCE } from "../../db/schema.js";
import { APPLY_STATEMENT, type ChangeRequest, encodeRequests } from "./ledger.statements.js";

/**
 * Credits many lots at once, 500 changes a statement, straight through ledger_apply: for the
 * benchmarks (src/scripts/bench/lots.ts), which need users with expiring lots and no store around
 * them. Every rule of the money function applies; refusals are counted, not thrown.
 */
export async function seedCredits(
  database: Pick<DatabaseHandle, "query">,
  credits: readonly ChangeRequest[],
): Promise<{ applied: number; refused: number }> {
  let applied = 0;
  for (let i = 0; i < credits.length; i += 500) {
    const batch = credits.slice(i, i + 500).filter((credit) => credit.delta > 0);
    const rows = await database.query<{ status: string }>(APPLY_STATEMENT, [
      encodeRequests(batch),
      MAX_BALANCE,
    ]);
    applied += rows.filter((row) => row.status === "applied").length;
  }
  return { applied, refused: credits.length - applied };
}
