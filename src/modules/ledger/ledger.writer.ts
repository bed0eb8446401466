import type { DatabaseHandle } from "../../db/client.js";
import { createGroupCommit, type GroupCommitOptions } from "../../db/group-commit.js";
import { MAX_BALANCE } from "../../db/schema.js";
import { isReferenceRace } from "./ledger.errors.js";
import {
  APPLY_STATEMENT,
  type ChangeOutcome,
  type ChangeRequest,
  decodeOutcomes,
  encodeRequests,
  type OutcomeRow,
} from "./ledger.statements.js";

export type LedgerWriterOptions = Omit<GroupCommitOptions, "retry">;

/** Applies changes that arrive outside any transaction of the caller's, by group commit. */
export interface LedgerWriter {
  apply(request: ChangeRequest): Promise<ChangeOutcome>;
}

/**
 * The ledger's group commit: the changes of one batch go in one prepared `ledger_apply` statement.
 * Batches lock their balances in user order, so a deadlock is not expected; a race on an external
 * reference between two users' changes (see isReferenceRace) makes the batch run again.
 */
export function createLedgerWriter(
  database: Pick<DatabaseHandle, "query">,
  options: LedgerWriterOptions = {},
): LedgerWriter {
  const group = createGroupCommit(
    async (requests: readonly ChangeRequest[]) => {
      const rows = await database.query<OutcomeRow>(APPLY_STATEMENT, [encodeRequests(requests), MAX_BALANCE]);
      return decodeOutcomes(rows, requests.length);
    },
    { ...options, retry: { alsoWhen: isReferenceRace } },
  );
  return { apply: (request) => group.submit(request) };
}
