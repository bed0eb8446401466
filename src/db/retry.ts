import { isTransientConflict } from "./errors.js";

export interface RetryOptions {
  /** Also retry on these errors (such as a concurrent twin winning a unique index). */
  readonly alsoWhen?: (error: unknown) => boolean;
  readonly attempts?: number;
}

/**
 * The one retry loop for database work: runs `work` again when PostgreSQL aborted it for a
 * serialization failure or a deadlock, or for an error the caller names. `work` must be a whole
 * transaction (or a single statement), so every attempt starts from nothing. Never nest it: a
 * retried call inside another retried call multiplies attempts.
 */
export async function withRetry<T>(work: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const attempts = options.attempts ?? 5;
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await work();
    } catch (error) {
      const retryable = isTransientConflict(error) || options.alsoWhen?.(error) === true;
      if (attempt >= attempts || !retryable) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * attempt));
    }
  }
}
