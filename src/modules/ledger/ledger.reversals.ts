import type { Logger } from "pino";
import { z } from "zod";
import type { Executor } from "../../db/client.js";
import { InvalidInputError, parseInput } from "../../validation.js";
import { written } from "./ledger.outcomes.js";
import { findByExternalRef, findEntry } from "./ledger.queries.js";
import type { ChangeOutcome, ChangeRequest } from "./ledger.statements.js";
import type { GrantResult, RefundReversal, ReversalResult } from "./ledger.types.js";
import { descriptionSchema, isRowId } from "./ledger.validation.js";

export const reverseSpendInputSchema = z.object({
  entryId: z.string().refine(isRowId, "must be the id of a ledger entry"),
  reason: descriptionSchema,
});

/** The spend's owner, and what became of the reversal. */
export interface SpendReversal {
  readonly userId: string;
  readonly result: GrantResult;
}

/**
 * An admin gives a spend's tokens back (§E row 34): one ADJUSTMENT entry of the spend's amount,
 * whose tokens go back into the lots the spend drew, through its lot moves; a part whose lot has
 * ended expires at once (an EXPIRE entry after the ADJUSTMENT). Tokens no move accounts for (what a
 * hold's capture used of its pins, from a lot that ended while held, or a spend written before lots)
 * open a non-expiring restore lot. A spend is reversed once: its reversal's external_ref is `reversal:<entry id>`, so another
 * call answers the first reversal (`replayed`). An unknown entry, or one that is not a SPEND, is
 * invalid input; a reversal that would lift the balance above MAX_BALANCE is `balance_limit`.
 */
export async function reverseSpend(
  db: Executor,
  apply: (request: ChangeRequest) => Promise<ChangeOutcome>,
  rawInput: unknown,
  reversedBy: string,
  log: Logger,
): Promise<SpendReversal> {
  const input = parseInput(reverseSpendInputSchema, rawInput);
  const spend = await findEntry(db, input.entryId);
  if (!spend) throw new InvalidInputError(`entryId: there is no ledger entry ${input.entryId}`);
  if (spend.kind !== "SPEND")
    throw new InvalidInputError(
      `entryId: entry ${input.entryId} is a ${spend.kind}; only a SPEND can be reversed`,
    );
  const request: ChangeRequest = {
    userId: spend.userId,
    delta: -spend.amount,
    kind: "ADJUSTMENT",
    op: "reverse_spend",
    description: input.reason,
    metadata: { adjustedBy: reversedBy },
    externalRef: `reversal:${spend.id}`,
    reversesEntry: String(spend.id),
  };
  const result = written(await apply(request), request, ["balance_limit"]);
  if (result.status === "applied" && !result.replayed) {
    const { id, balanceAfter } = result.entry;
    log.info(
      { userId: spend.userId, amount: -spend.amount, reversedBy, entryId: id, reversedEntryId: spend.id },
      `Admin ${reversedBy} reversed spend ${spend.id} of user ${spend.userId} (${-spend.amount} tokens back). New balance: ${balanceAfter}`,
    );
  }
  return { userId: spend.userId, result };
}

/**
 * RevenueCat reversed a refund: exactly what the REFUND took comes back, into the lots it took from
 * (a part whose lot has ended expires at once); once per refund (the store ref is the external_ref).
 */
export async function reverseRefund(
  db: Executor,
  apply: (request: ChangeRequest) => Promise<ChangeOutcome>,
  reversal: RefundReversal,
): Promise<ReversalResult> {
  const refund = await findByExternalRef(db, "REFUND", reversal.storeRef);
  if (!refund) return { status: "no-refund" };
  const request: ChangeRequest = {
    userId: refund.userId,
    delta: -refund.amount,
    kind: "REFUND_REVERSAL",
    op: "reverse_refund",
    description: `Refund reversed for ${reversal.storeRef}`,
    metadata: { ...reversal.metadata, refundEntryId: refund.id },
    externalRef: reversal.storeRef,
  };
  const outcome = await apply(request);
  if (outcome.status === "duplicate") return { status: "duplicate", entry: outcome.entry };
  const result = written(outcome, request, ["balance_limit"]);
  return result.status === "applied" ? { status: "reversed", entry: result.entry, refund } : result;
}
