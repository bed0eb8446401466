import type { DatabaseHandle } from "../../db/client.js";
import type { LedgerService } from "./ledger.service.js";

export interface HoldSweepMetrics {
  /** Holds the sweep ended at their TTL. */
  holdsExpired?(holds: number): void;
  /** Active holds and the tokens they hold, at each sweep's start. */
  holds?(active: number, tokens: number): void;
}

/** At most this many batches per sweep, so one sweep always ends; the next goes on. */
const MAX_ROUNDS = 100;
/** Holds whose expiry is in the group commit's queue at once. */
const SLICE = 32;

/**
 * The expiry sweeper's part for holds (§C5): finds active holds past their TTL through the
 * token_holds_due index and asks the ledger to end them (expire_hold), a slice at a time through the
 * group commit, so their tokens come back and balanceChanged (HOLD_EXPIRED) reaches the app. Only
 * visibility again: a capture after the TTL is refused by the clock, and every batch ends its
 * users' due holds first. A hold another writer ended meanwhile is not counted.
 */
export async function sweepDueHolds(
  deps: {
    database: Pick<DatabaseHandle, "query">;
    ledger: Pick<LedgerService, "expireHolds">;
    metrics?: HoldSweepMetrics | undefined;
  },
  batchSize: number,
  stopped: () => boolean,
): Promise<number> {
  const [active] = await deps.database.query<{ n: number | string; tokens: number | string }>(
    `SELECT count(*) AS n, coalesce(sum(amount), 0) AS tokens FROM token_holds WHERE status = 'active'`,
    [],
  );
  deps.metrics?.holds?.(Number(active?.n ?? 0), Number(active?.tokens ?? 0));
  let expired = 0;
  for (let round = 0; round < MAX_ROUNDS && !stopped(); round += 1) {
    const due = await deps.database.query<{ id: string | number; user_id: string }>(
      `SELECT id, user_id FROM token_holds WHERE status = 'active' AND expires_at <= now()
        ORDER BY expires_at LIMIT $1`,
      [batchSize],
    );
    if (due.length === 0) break;
    let ended = 0;
    for (let at = 0; at < due.length && !stopped(); at += SLICE) {
      const slice = due.slice(at, at + SLICE).map((row) => ({ id: String(row.id), userId: row.user_id }));
      const results = await deps.ledger.expireHolds(slice);
      ended += results.filter((result) => result.expired).length;
    }
    expired += ended;
    deps.metrics?.holdsExpired?.(ended);
    if (due.length < batchSize) break;
  }
  return expired;
}
