import { type RetryOptions, withRetry } from "./retry.js";

export interface GroupCommitOptions {
  /** The most items one write takes. */
  readonly maxBatch?: number;
  /** How many writes may be in flight at once (each on its own connection). */
  readonly maxInFlight?: number;
  /** Told the size of every batch written (for a histogram). */
  readonly onBatch?: (size: number) => void;
  /** Which failures of a whole write are retried (besides serialization failures and deadlocks). */
  readonly retry?: RetryOptions;
}

export interface GroupCommit<Item, Result> {
  /** Resolves with the item's own result once the write that carried it has committed. */
  submit(item: Item): Promise<Result>;
}

interface Waiting<Item, Result> {
  readonly item: Item;
  resolve(result: Result): void;
  reject(error: unknown): void;
}

/**
 * Group commit: items that arrive while a write is in flight wait for it and then go together, in
 * arrival order, in one write (one statement: one round trip, one commit, one NOTIFY lock). An idle
 * writer sends a lone item at once (at the end of the current turn of the event loop, with whatever
 * arrived in the same turn); batches grow only under load, up to `maxBatch`. Nothing is
 * acknowledged before its write has committed. `write` answers one result per item, in order.
 */
export function createGroupCommit<Item, Result>(
  write: (items: readonly Item[]) => Promise<readonly Result[]>,
  options: GroupCommitOptions = {},
): GroupCommit<Item, Result> {
  const maxBatch = options.maxBatch ?? 128;
  const maxInFlight = options.maxInFlight ?? 2;
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
    options.onBatch?.(batch.length);
    try {
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
      return new Promise<Result>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        schedule();
      });
    },
  };
}
