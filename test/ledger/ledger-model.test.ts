import { randomUUID } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  APPLY_STATEMENT,
  type ChangeOutcome,
  type ChangeRequest,
  decodeOutcomes,
  encodeRequests,
  type OutcomeRow,
} from "../../src/modules/ledger/ledger.statements.js";
import { driverName, useTestDatabase } from "../helpers/database.js";
import { LedgerModel, type ModelOutcome } from "./reference-model.js";

// ledger_apply against its reference model: random batches of credits, spends (some with an
// idempotency key, some counted by a rate limit), purchases and refunds of what is left, over a few
// users with a low balance limit so that every refusal happens. Both must answer the same outcomes.

const database = useTestDatabase();
const MAX = 1000;

type Op = {
  op: "credit" | "spend" | "purchase" | "refund";
  user: number;
  amount: number;
  slot: number;
  hash: number;
  counted: boolean;
};

const opArbitrary: fc.Arbitrary<Op> = fc.record({
  op: fc.constantFrom("credit", "spend", "purchase", "refund"),
  user: fc.integer({ min: 0, max: 2 }),
  amount: fc.integer({ min: 1, max: 600 }),
  // A small pool of idempotency keys and store references, so that they collide.
  slot: fc.integer({ min: 0, max: 4 }),
  hash: fc.integer({ min: 0, max: 1 }),
  counted: fc.boolean(),
});
const batchesArbitrary = fc.array(fc.array(opArbitrary, { minLength: 1, maxLength: 8 }), {
  minLength: 1,
  maxLength: 4,
});

/** One run's requests: users, keys and references of its own, so runs share nothing. */
function toRequest(run: string, { op, user, amount, slot, hash, counted }: Op): ChangeRequest {
  const userId = `${run}-u${user}`;
  switch (op) {
    case "credit":
      return { userId, delta: amount, kind: "GRANT", description: null };
    case "spend":
      return {
        userId,
        delta: -amount,
        kind: "SPEND",
        description: null,
        ...(slot < 2 ? { idempotencyKey: `${run}-k${slot}`, requestHash: `h${hash}` } : {}),
        ...(counted ? { rateLimit: { key: `${run}-rate-${userId}`, points: 3, windowMs: 600_000 } } : {}),
      };
    case "purchase":
      return { userId, delta: amount, kind: "PURCHASE", description: null, externalRef: `${run}-s${slot}` };
    case "refund":
      return {
        userId,
        delta: -amount,
        mode: "what_is_left",
        kind: "REFUND",
        description: null,
        externalRef: `${run}-s${slot}`,
      };
  }
}

/** What the model can know of an outcome (not ids or times). */
function comparable(outcome: ChangeOutcome): ModelOutcome {
  switch (outcome.status) {
    case "applied":
      return {
        status: "applied",
        userId: outcome.entry.userId,
        amount: outcome.entry.amount,
        balanceAfter: outcome.entry.balanceAfter,
        version: outcome.entry.balanceVersion,
      };
    case "replay":
      return {
        status: "replay",
        userId: outcome.entry.userId,
        amount: outcome.entry.amount,
        available: outcome.available,
        requestHash: outcome.requestHash,
      };
    case "duplicate":
      return { status: "duplicate", userId: outcome.entry.userId, amount: outcome.entry.amount };
    case "insufficient":
    case "limit":
    case "rate_limited":
      return { status: outcome.status, available: outcome.available };
    default:
      throw new Error(`a change answered ${outcome.status}`);
  }
}

describe(`ledger_apply against its reference model on ${driverName}`, () => {
  it("random batches give the same outcomes", async () => {
    await fc.assert(
      fc.asyncProperty(batchesArbitrary, async (batches) => {
        const run = randomUUID();
        const model = new LedgerModel(MAX);
        for (const batch of batches) {
          const requests = batch.map((op) => toRequest(run, op));
          const rows = await database
            .current()
            .handle.query<OutcomeRow>(APPLY_STATEMENT, [encodeRequests(requests), MAX]);
          const actual = decodeOutcomes(rows, requests.length).map(comparable);
          expect(actual).toEqual(model.apply(requests));
        }
      }),
      { numRuns: 60 },
    );
  });
});
