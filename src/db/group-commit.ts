import { type RetryOptions, withRetry } from "./retry.js";

export interface GroupCommitOptions {
  /** The most items one write takes. */
  readonly maxBatch?: number;
  /** How many writes may be in flight at once (each on its own connection). */
  readonly maxInFlight?: number;
  /**
   * The most items that may wait for a write. Past it, `submit` refuses at once with
   * OverloadedError (the edge answers 503 OVERLOADED with Retry-After) instead of letting the queue,
   * and every caller's wait, grow without end.
   */
  readonly maxQueued?: number;
  /** Told the size of every batch written (for a histogram). */
  readonly onBatch?: (size: number) => void;
  /** Which failures of a whole write are retried (besides serialization failures and deadlocks). */
  readonly retry?: RetryOptions;
}

export interface GroupCommit<Item, Result> {
  /**
   * Resolves with the item's own result once the write that carried it has committed. Rejects with
   * the write's error when the write failed (see createGroupCommit), or at once with OverloadedError
   * when `maxQueued` items are already waiting.
   */
  submit(item: Item): Promise<Result>;
}

/** Too many writes are waiting; nothing was written. The client may try again after a moment. */
export class OverloadedError extends Error {
  override readonly name = "OverloadedError";
  readonly retryAfterSeconds = 1;
  constructor(readonly queued: number) {
    super("The server is busy; try again shortly");
  }
}

interface Waiting<Item, Result> {
  readonly item: Item;
  resolve(result: Result): void;
  reject(error: unknown): void;
}

/**
 * Group commit: items that arrive while every write slot is busy (`maxInFlight`, 2 by default) wait,
 * and then go together, in arrival order, in one write (one statement: one round trip, one commit,
 * one NOTIFY lock). A free slot sends what is waiting at the end of the current turn of the event
 * loop (a lone item at once, with whatever arrived in the same turn); batches grow only under load,
 * up to `maxBatch`. Nothing is acknowledged before its write has committed. `write` answers one
 * result per item, in order; an item it gives no result for is rejected.
 *
 * Errors are shared by the batch: `write` runs whole or not at all, so when it fails (after the
 * retries of `options.retry`) every item of the batch is rejected with that error, and none was
 * written. A refusal that concerns one item must therefore be a result, not an error (the ledger's
 * statement answers each refusal as a row); the doors validate input first, so that a statement
 * error is a bug or an outage, not one caller's bad request.
 */
export function createGroupCommit<Item, Result>(
  write: (items: readonly Item[]) => Promise<readonly Result[]>,
  options: GroupCommitOptions = {},
): GroupCommit<Item, Result> {
  const maxBatch = options.maxBatch ?? 128;
  const maxInFlight = options.maxInFlight ?? 2;
  const maxQueued = options.maxQueued ?? 10_000;
  const queue: Waiting<Item, Result>[] = [];
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
      void run(batch).finally(() => {
        inFlight -= 1;
        schedule();
      });
    }
  }

  async function run(batch: Waiting<Item, Result>[]): Promise<void> {
    try {
      options.onBatch?.(batch.length);
      // A write runs whole or not at all, so running it again after an abort is safe.
      const results = await withRetry(() => write(batch.map((waiting) => waiting.item)), options.retry);
      batch.forEach((waiting, i) => {
        const result = results[i];
        if (result !== undefined) waiting.resolve(result);
        else waiting.reject(new Error(`the write gave no result for item ${i} of ${batch.length}`));
      });
    } catch (error) {
      for (const waiting of batch) waiting.reject(error);
    }
  }

  return {
    submit(item) {
      if (queue.length >= maxQueued) return Promise.reject(new OverloadedError(queue.length));
      return new Promise<Result>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        schedule();
      });
    },
  };
}
