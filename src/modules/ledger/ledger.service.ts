import { createHash } from "node:crypto";
import { sql } from "drizzle-orm";
import type { Logger } from "pino";
import stringify from "safe-stable-stringify";
import { type Database, type Executor, queryRows } from "../../db/client.js";
import { UNIQUE_VIOLATION, violates } from "../../db/errors.js";
import { withRetry } from "../../db/retry.js";
import { parseInput } from "../../validation.js";
import { BalanceLimitError, IdempotencyConflictError, InsufficientTokensError } from "./ledger.errors.js";
import { findByExternalRef, findByIdempotencyKey, type LedgerEntry } from "./ledger.queries.js";
import { appendCredit, appendDebit, type EntryDraft, IDEMPOTENCY_KEY_INDEX } from "./ledger.statements.js";
import { grantInputSchema, spendInputSchema } from "./ledger.validation.js";

export interface WriteOptions {
  /** The request's logger, so the ledger's lines carry the request id. */
  readonly log?: Logger | undefined;
  /** Run inside the caller's transaction (the webhook's); by default an operation is its own. */
  readonly executor?: Executor | undefined;
}

export interface WriteResult {
  readonly entry: LedgerEntry;
  /** True when an idempotency key matched an earlier, identical request: nothing was written. */
  readonly replayed: boolean;
}

/** A store purchase to credit; `storeRef` (`<store>:<transaction id>`) credits at most once. */
export interface PurchaseCredit {
  readonly userId: string;
  readonly tokens: number;
  readonly storeRef: string;
  readonly description: string;
  readonly metadata: Record<string, unknown>;
}

export type PurchaseCreditResult =
  | { readonly status: "credited"; readonly entry: LedgerEntry }
  | { readonly status: "duplicate"; readonly entry: LedgerEntry };

export interface PurchaseRefund {
  readonly storeRef: string;
  readonly metadata: Record<string, unknown>;
}

export type RefundResult =
  | {
      readonly status: "refunded";
      readonly entry: LedgerEntry;
      readonly purchase: LedgerEntry;
      /** Tokens taken back: what was left of the purchase under the balance's row lock. */
      readonly recovered: number;
      /** Tokens of the purchase already spent, which the refund could not take back. */
      readonly shortfall: number;
    }
  | { readonly status: "duplicate"; readonly entry: LedgerEntry }
  | { readonly status: "no-purchase" };

export interface RefundReversal {
  readonly storeRef: string;
  readonly metadata: Record<string, unknown>;
}

export type ReversalResult =
  | { readonly status: "reversed"; readonly entry: LedgerEntry; readonly refund: LedgerEntry }
  | { readonly status: "duplicate"; readonly entry: LedgerEntry }
  | { readonly status: "no-refund" };

/**
 * The only door for money: every balance change is one of these operations. Shared invariants: a
 * balance is a whole number from 0 to MAX_BALANCE; each change appends one immutable entry with its
 * signed amount, `balance_after` and a version one above the last, and is announced to live
 * subscribers only when its transaction commits. Refusals are thrown as the errors in
 * ledger.errors.ts and change nothing.
 */
export interface LedgerService {
  /**
   * Takes `amount` from the user's balance, never below 0 (InsufficientTokensError). `input` is a
   * SpendInput, validated here (InvalidInputError says what is wrong). With an idempotency key, a
   * retry of the same request returns the original entry (`replayed`) and a reuse with other input
   * throws IdempotencyConflictError; spend keys and grant keys never collide.
   */
  spend(userId: string, input: unknown, options?: WriteOptions): Promise<WriteResult>;
  /**
   * An operator's credit to a user, never above MAX_BALANCE (BalanceLimitError). `input` is a
   * GrantInput, validated here; idempotent like spend.
   */
  grant(input: unknown, grantedBy: string, options?: WriteOptions): Promise<WriteResult>;
  /** Credits a store purchase once per store transaction; a second credit returns the first entry. */
  creditPurchase(credit: PurchaseCredit, options?: WriteOptions): Promise<PurchaseCreditResult>;
  /**
   * Takes back a credited purchase's tokens, as many as are left (under the balance's row lock, so
   * the balance never goes below 0); reports `recovered` and `shortfall`. Once per store transaction.
   */
  refundPurchase(refund: PurchaseRefund, options?: WriteOptions): Promise<RefundResult>;
  /** Gives back exactly what a refund took, once per store transaction. */
  reverseRefund(reversal: RefundReversal, options?: WriteOptions): Promise<ReversalResult>;
}

export function createLedgerService(deps: { db: Database; logger: Logger }): LedgerService {
  return new Ledger(deps.db, deps.logger);
}

class Ledger implements LedgerService {
  constructor(
    private readonly db: Database,
    private readonly logger: Logger,
  ) {}

  async spend(userId: string, rawInput: unknown, options: WriteOptions = {}): Promise<WriteResult> {
    const input = parseInput(spendInputSchema, rawInput);
    const draft: EntryDraft = {
      userId,
      kind: "SPEND",
      description: input.description,
      metadata: input.metadata ?? null,
      idempotencyKey: input.idempotencyKey ?? null,
      requestHash: input.idempotencyKey
        ? requestHash({
            op: "spend",
            amount: input.amount,
            description: input.description,
            metadata: input.metadata ?? null,
          })
        : null,
    };
    const result = await this.writeOnce(
      (executor) => appendDebit(executor, draft, input.amount),
      draft,
      options,
    );
    if (!result.replayed) {
      const balance = result.entry.balanceAfter;
      (options.log ?? this.logger).info(
        { userId, amount: input.amount, balance, entryId: result.entry.id },
        `User ${userId} spent ${input.amount} tokens. New balance: ${balance}`,
      );
    }
    return result;
  }

  async grant(rawInput: unknown, grantedBy: string, options: WriteOptions = {}): Promise<WriteResult> {
    const input = parseInput(grantInputSchema, rawInput);
    const draft: EntryDraft = {
      userId: input.userId,
      kind: "GRANT",
      description: input.reason,
      metadata: { grantedBy },
      idempotencyKey: input.idempotencyKey ?? null,
      requestHash: input.idempotencyKey
        ? requestHash({ op: "grant", amount: input.amount, reason: input.reason })
        : null,
    };
    const result = await this.writeOnce(
      (executor) => appendCredit(executor, draft, input.amount),
      draft,
      options,
    );
    if (!result.replayed) {
      const { id, balanceAfter } = result.entry;
      (options.log ?? this.logger).info(
        { userId: input.userId, amount: input.amount, grantedBy, entryId: id },
        `Admin ${grantedBy} granted ${input.amount} tokens to user ${input.userId}. New balance: ${balanceAfter}`,
      );
    }
    return result;
  }

  async creditPurchase(credit: PurchaseCredit, options: WriteOptions = {}): Promise<PurchaseCreditResult> {
    const executor = options.executor ?? this.db;
    const earlier = await findByExternalRef(executor, "PURCHASE", credit.storeRef);
    if (earlier) return { status: "duplicate", entry: earlier };
    const draft: EntryDraft = {
      userId: credit.userId,
      kind: "PURCHASE",
      description: credit.description,
      metadata: credit.metadata,
      externalRef: credit.storeRef,
    };
    return { status: "credited", entry: await appendCredit(executor, draft, credit.tokens) };
  }

  async refundPurchase(refund: PurchaseRefund, options: WriteOptions = {}): Promise<RefundResult> {
    const executor = options.executor ?? this.db;
    const purchase = await findByExternalRef(executor, "PURCHASE", refund.storeRef);
    if (!purchase) return { status: "no-purchase" };
    const earlier = await findByExternalRef(executor, "REFUND", refund.storeRef);
    if (earlier) return { status: "duplicate", entry: earlier };
    // What is left is read under the balance's row lock, so what we take is what is there.
    const [row] = await queryRows<{ balance: number }>(
      executor,
      sql`SELECT balance FROM token_balances WHERE user_id = ${purchase.userId} FOR UPDATE`,
    );
    const recovered = Math.min(row?.balance ?? 0, purchase.amount);
    const shortfall = purchase.amount - recovered;
    const metadata = { refundedTokens: purchase.amount, recovered, shortfall, purchaseEntryId: purchase.id };
    const draft: EntryDraft = {
      userId: purchase.userId,
      kind: "REFUND",
      description: `Refund of ${purchase.description ?? refund.storeRef}`,
      metadata: { ...refund.metadata, ...metadata },
      externalRef: refund.storeRef,
    };
    const entry = await appendDebit(executor, draft, recovered);
    return { status: "refunded", entry, purchase, recovered, shortfall };
  }

  async reverseRefund(reversal: RefundReversal, options: WriteOptions = {}): Promise<ReversalResult> {
    const executor = options.executor ?? this.db;
    const refund = await findByExternalRef(executor, "REFUND", reversal.storeRef);
    if (!refund) return { status: "no-refund" };
    const earlier = await findByExternalRef(executor, "REFUND_REVERSAL", reversal.storeRef);
    if (earlier) return { status: "duplicate", entry: earlier };
    const draft: EntryDraft = {
      userId: refund.userId,
      kind: "REFUND_REVERSAL",
      description: `Refund reversed for ${reversal.storeRef}`,
      metadata: { ...reversal.metadata, refundEntryId: refund.id },
      externalRef: reversal.storeRef,
    };
    const entry = await appendCredit(executor, draft, -refund.amount);
    return { status: "reversed", entry, refund };
  }

  /**
   * Writes a client-keyed entry exactly once. The unique (user, kind, key) index is the guard: a
   * concurrent twin fails on it and then finds the winner's entry, so both callers get one answer.
   * Inside a caller's transaction a failed statement would abort it, so the key is looked up first.
   */
  private async writeOnce(
    write: (executor: Executor) => Promise<LedgerEntry>,
    draft: EntryDraft,
    { executor }: WriteOptions,
  ): Promise<WriteResult> {
    const key = draft.idempotencyKey;
    if (key && executor) {
      const earlier = await this.replayOf(executor, draft, key);
      if (earlier) return earlier;
    }
    try {
      const entry = executor ? await write(executor) : await withRetry(() => write(this.db));
      return { entry, replayed: false };
    } catch (error) {
      // A replay fails like a new request would (on the key's index, or on a balance the original
      // already used); either way the earlier entry, if there is one, is the answer.
      const replayable =
        violates(error, UNIQUE_VIOLATION, IDEMPOTENCY_KEY_INDEX) ||
        error instanceof InsufficientTokensError ||
        error instanceof BalanceLimitError;
      const replay = key && replayable && !executor ? await this.replayOf(this.db, draft, key) : null;
      if (replay) return replay;
      throw error;
    }
  }

  private async replayOf(executor: Executor, draft: EntryDraft, key: string): Promise<WriteResult | null> {
    const earlier = await findByIdempotencyKey(executor, draft.userId, draft.kind, key);
    if (!earlier) return null;
    if (earlier.requestHash !== draft.requestHash) throw new IdempotencyConflictError(key);
    return { entry: earlier.entry, replayed: true };
  }
}

/** SHA-256 of a request, stable under key order, stored beside an idempotency key. */
function requestHash(request: unknown): string {
  return createHash("sha256")
    .update(stringify(request) ?? "")
    .digest("hex");
}
