import type { DatabaseHandle } from "../../db/client.js";
import { withRetry } from "../../db/retry.js";
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

export interface LedgerWriterOptions {
  /** The most changes one statement applies. */
  readonly maxBatch?: number;
  /** How many batches may be written at once (each on its own connection). */
  readonly maxInFlight?: number;
  /** Told the size of every batch written (for the batch-size histogram). */
  readonly onBatch?: (size: number) => void;
}

/** Applies changes that arrive outside any transaction of the caller's, by group commit. */
export interface LedgerWriter {
  apply(request: ChangeRequest): Promise<ChangeOutcome>;
}

interface Waiting {
  readonly request: ChangeRequest;
  resolve(outcome: ChangeOutcome): void;
  reject(error: unknown): void;
}

/**
 * Group commit: changes that arrive while a batch is being written wait for it and then go together,
 * in arrival order, in one prepared statement (one round trip, one commit, one NOTIFY lock). An idle
 * writer sends a lone change at once (at the end of the current turn of the event loop, together with
 * whatever arrived in the same turn); batches grow only under load, up to `maxBatch`. Nothing is
 * acknowledged before its batch has committed: each caller's promise settles after the statement.
 */
export function createLedgerWriter(
  database: Pick<DatabaseHandle, "query">,
  options: LedgerWriterOptions = {},
): LedgerWriter {
  const maxBatch = options.maxBatch ?? 128;
  const maxInFlight = options.maxInFlight ?? 2;
  const queue: Waiting[] = [];
  let inFlight = 0;
  let scheduled = false;

  function schedule(): void {
    if (scheduled || inFlight >= maxInFlight || queue.length === 0) return;
    scheduled = true;
    setImmediate(pump);
  }

  function pump(): void {
    scheduled = false;
    while (inFlight < maxInFlight && queue.length > 0) {
      const batch = queue.splice(0, maxBatch);
      inFlight += 1;
      void write(batch).finally(() => {
        inFlight -= 1;
        schedule();
      });
    }
  }

  async function write(batch: Waiting[]): Promise<void> {
    const requests = batch.map((waiting) => waiting.request);
    options.onBatch?.(batch.length);
    try {
      // Batches lock their balances in user order, so a deadlock is not expected; if PostgreSQL
      // aborts one anyway, the whole statement ran or nothing did, and it runs again.
      const rows = await withRetry(
        () => database.query<OutcomeRow>(APPLY_STATEMENT, [encodeRequests(requests), MAX_BALANCE]),
        { alsoWhen: isReferenceRace },
      );
      const outcomes = decodeOutcomes(rows, requests.length);
      batch.forEach((waiting, i) => {
        const outcome = outcomes[i];
        if (outcome) waiting.resolve(outcome);
        else waiting.reject(new Error(`ledger_apply gave no outcome for request ${i} of ${batch.length}`));
      });
    } catch (error) {
      for (const waiting of batch) waiting.reject(error);
    }
  }

  return {
    apply(request) {
      return new Promise<ChangeOutcome>((resolve, reject) => {
        queue.push({ request, resolve, reject });
        schedule();
      });
    },
  };
}
