import type { Logger } from "pino";
import type { Database } from "../../db/client.js";
import { withRetry } from "../../db/retry.js";
import { parseInput } from "../../validation.js";
import { IdempotencyConflictError } from "./ledger.errors.js";
import { requestHash, written } from "./ledger.outcomes.js";
import { applyChanges, type ChangeOutcome, type ChangeRequest } from "./ledger.statements.js";
import type { TransferResult } from "./ledger.types.js";
import { transferInputSchema } from "./ledger.validation.js";

/**
 * LedgerService.transfer: a debit of one user and a credit of another in one ledger_apply statement
 * inside one transaction. The statement applies each change on its own (a refused one fails alone),
 * so a refused side is thrown inside the transaction, which rolls the other side back. Both balances
 * are locked in user order, so opposite transfers between two users wait for each other instead of
 * deadlocking. Both sides carry the same idempotency key and request hash.
 */
export async function transferTokens(
  db: Database,
  rawInput: unknown,
  transferredBy: string,
  log: Logger,
): Promise<TransferResult> {
  const input = parseInput(transferInputSchema, rawInput);
  const key = input.idempotencyKey ?? null;
  const { fromUserId, toUserId, amount, reason } = input;
  const hash = key ? requestHash({ op: "transfer", fromUserId, toUserId, amount, reason }) : null;
  const side = (userId: string, delta: number, other: Record<string, string>): ChangeRequest => ({
    userId,
    delta,
    kind: "TRANSFER",
    description: reason,
    metadata: { transferredBy, ...other },
    idempotencyKey: key,
    requestHash: hash,
  });
  const debit = side(fromUserId, -amount, { toUserId });
  const credit = side(toUserId, amount, { fromUserId });
  const [debited, credited] = await withRetry(() =>
    db.transaction(async (tx) => {
      const outcomes = await applyChanges(tx, [debit, credit]);
      return [written(outcomes[0] as ChangeOutcome, debit), written(outcomes[1] as ChangeOutcome, credit)];
    }),
  );
  // Only an earlier, identical transfer replays both sides; anything else reused the key.
  if (debited.replayed !== credited.replayed) throw new IdempotencyConflictError(key ?? "");
  const result = { debit: debited.entry, credit: credited.entry, replayed: debited.replayed };
  if (!result.replayed) {
    const ids = { debitId: result.debit.id, creditId: result.credit.id };
    log.info(
      { fromUserId, toUserId, amount, transferredBy, ...ids },
      `Admin ${transferredBy} moved ${amount} tokens from user ${fromUserId} to user ${toUserId}`,
    );
  }
  return result;
}
