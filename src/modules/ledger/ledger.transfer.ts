import type { Logger } from "pino";
import type { Database } from "../../db/client.js";
import { withRetry } from "../../db/retry.js";
import { parseInput } from "../../validation.js";
import { requestHash, written } from "./ledger.outcomes.js";
import { applyChanges, type ChangeOutcome, type ChangeRequest } from "./ledger.statements.js";
import type { TransferResult } from "./ledger.types.js";
import { transferInputSchema } from "./ledger.validation.js";

/**
 * LedgerService.transfer: a debit of one user and a credit of another in one ledger_apply statement
 * inside one transaction. The statement applies each change on its own (a refused one fails alone),
 * so a refused side rolls the transaction back (a private throw, caught here into the refusal's
 * value), and with it the other side. Both balances
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
  let result: Extract<TransferResult, { status: "applied" }>;
  try {
    result = await withRetry(() =>
      db.transaction(async (tx) => {
        const [debited, credited] = await applyChanges(tx, [debit, credit]);
        const both = sides(debited as ChangeOutcome, credited as ChangeOutcome, debit, credit);
        if (both.status !== "applied") throw new Refused(both);
        return both;
      }),
    );
  } catch (error) {
    if (error instanceof Refused) return error.refusal;
    throw error;
  }
  if (!result.replayed) {
    const ids = { debitId: result.debit.id, creditId: result.credit.id };
    log.info(
      { fromUserId, toUserId, amount, transferredBy, ...ids },
      `Admin ${transferredBy} moved ${amount} tokens from user ${fromUserId} to user ${toUserId}`,
    );
  }
  return result;
}

/** Both sides written, or the first refused side's refusal (the debit's first). */
function sides(
  debited: ChangeOutcome,
  credited: ChangeOutcome,
  debit: ChangeRequest,
  credit: ChangeRequest,
): TransferResult {
  const from = written(debited, debit, ["insufficient", "key_reused"]);
  if (from.status !== "applied") return from;
  const to = written(credited, credit, ["balance_limit", "key_reused"]);
  if (to.status !== "applied") return to;
  // Only an earlier, identical transfer replays both sides; anything else reused the key.
  if (from.replayed !== to.replayed) {
    // The debitor's balance as it stands: the statement's for a replay, else the one before this debit.
    const available = debited.status === "replay" ? debited.available : from.entry.balanceAfter - debit.delta;
    return { status: "key_reused", available };
  }
  return { status: "applied", debit: from.entry, credit: to.entry, replayed: from.replayed };
}

/** Carries a refused side out of the transaction, so that the transaction rolls back. */
class Refused extends Error {
  constructor(readonly refusal: Exclude<TransferResult, { status: "applied" }>) {
    super(`transfer refused: ${refusal.status}`);
  }
}
