import type { Logger } from "pino";
import type { Database, DatabaseHandle } from "../../db/client.js";
import { parseInput } from "../../validation.js";
import * as holds from "./ledger.holds.js";
import { changeLotEnd, expireDue, refundPurchase } from "./ledger.lots.js";
import type { SpendOptions, WriteOptions } from "./ledger.options.js";
import { requestHash, written } from "./ledger.outcomes.js";
import { type Balance, legacyRef, readBalance } from "./ledger.queries.js";
import { reverseRefund, reverseSpend, type SpendReversal } from "./ledger.reversals.js";
import { applyChanges, type ChangeOutcome, type ChangeRequest } from "./ledger.statements.js";
import { transferTokens } from "./ledger.transfer.js";
import type {
  AdjustResult,
  CaptureResult,
  ExpiryResult,
  GrantResult,
  Hold,
  HoldActor,
  HoldExpiryResult,
  HoldPage,
  LegacyImport,
  LegacyImportResult,
  LotEndChange,
  LotEndResult,
  PurchaseRefund,
  RefundResult,
  RefundReversal,
  ReleaseResult,
  ReserveResult,
  ReversalResult,
  SpendResult,
  TransferResult,
} from "./ledger.types.js";
import { adjustInputSchema, grantInputSchema, spendInputSchema } from "./ledger.validation.js";
import { createLedgerWriter, type LedgerWriterOptions } from "./ledger.writer.js";

export type { SpendOptions, WriteOptions } from "./ledger.options.js";
export type * from "./ledger.types.js";

/**
 * The only door for money: every balance change is one of these operations. Shared invariants: a
 * balance is a whole number from 0 to MAX_BALANCE; each change appends one immutable entry with its
 * signed amount, `balance_after` and a version one above the last, and is announced to live
 * subscribers only when its transaction commits. Refusals are values (ledger.types.ts: `status`
 * other than "applied", with the balance the statement saw) and change nothing; invalid input throws
 * InvalidInputError, and the database's failures throw as they are.
 */
export interface LedgerService {
  /**
   * Takes `amount` from the user's balance, never below 0 (`insufficient`). `input` is a
   * SpendInput, validated here (InvalidInputError says what is wrong). With an idempotency key, a
   * retry of the same request returns the original entry (`replayed`) and a reuse with other input
   * is `key_reused`; spend keys and grant keys never collide.
   */
  spend(userId: string, input: unknown, options?: SpendOptions): Promise<SpendResult>;
  /**
   * An operator's credit to a user, never above MAX_BALANCE (`balance_limit`). `input` is a
   * GrantInput, validated here; idempotent like spend.
   */
  grant(input: unknown, grantedBy: string, options?: WriteOptions): Promise<GrantResult>;
  /**
   * An operator's signed correction of a user's balance with a required reason, recorded with who
   * made it (an ADJUSTMENT entry). A debit never takes the balance below 0: it is refused whole
   * (`insufficient`, with what is available), never clamped. `input` is an AdjustInput;
   * idempotent like grant.
   */
  adjust(input: unknown, adjustedBy: string, options?: Pick<WriteOptions, "log">): Promise<AdjustResult>;
  /** An admin gives a spend's tokens back into its lots (ledger.reversals.ts); once per spend. */
  reverseSpend(input: unknown, reversedBy: string, options?: WriteOptions): Promise<SpendReversal>;
  /**
   * Moves tokens from one user to another: a debit and a credit (TRANSFER entries) committed in one
   * transaction, or neither (the refused side's refusal). One idempotency key covers both sides.
   * `input` is a TransferInput.
   */
  transfer(
    input: unknown,
    transferredBy: string,
    options?: Pick<WriteOptions, "log">,
  ): Promise<TransferResult>;
  /**
   * Takes back ceil(granted × ratio) of a purchase's tokens: its own lot first, its expired part
   * counted as returned, the rest from the owner's other lots soonest-expiring first, never below 0
   * (`shortfall`). Once per store transaction; it hits the lot's owner (ledger.lots.ts).
   */
  refundPurchase(refund: PurchaseRefund, options?: WriteOptions): Promise<RefundResult>;
  /**
   * Gives back exactly what a refund took, into the lots it took from (a part whose lot has ended
   * expires at once), once per store transaction; never above MAX_BALANCE (`balance_limit`).
   */
  reverseRefund(reversal: RefundReversal, options?: WriteOptions): Promise<ReversalResult>;
  /** Moves the end of a store transaction's lot later (SUBSCRIPTION_EXTENDED); no tokens move. */
  extendLot(change: LotEndChange, options?: WriteOptions): Promise<LotEndResult>;
  /** Moves it earlier (an early EXPIRATION); a past end expires its free remainder now. */
  cutLot(change: LotEndChange, options?: WriteOptions): Promise<LotEndResult>;
  /** Expires the users' due lots by group commit (the expiry sweeper's call, ledger.sweeper.ts). */
  expireDue(userIds: readonly string[]): Promise<ExpiryResult[]>;
  /**
   * Credits a legacy balance as one LEGACY_IMPORT entry, exactly once per customer (also when two
   * imports run at once); never above MAX_BALANCE (`balance_limit`).
   */
  importLegacy(legacy: LegacyImport, options?: WriteOptions): Promise<LegacyImportResult>;
  /** The user's balance now (0, version 0, for a user who never had one). */
  balanceOf(userId: string): Promise<Balance>;
  /** Holds (issue 19): reserve, capture, release and read them (ledger.holds.ts). */
  reserve(userId: string, input: unknown, options?: SpendOptions): Promise<ReserveResult>;
  capture(holdId: string, input: unknown, actor: HoldActor, options?: WriteOptions): Promise<CaptureResult>;
  release(holdId: string, actor: HoldActor, options?: WriteOptions): Promise<ReleaseResult>;
  holdOf(holdId: string, actor: HoldActor): Promise<Hold | null>;
  holdsOf(userId: string, query: holds.HoldQuery): Promise<HoldPage>;
  /** Ends holds past their TTL by group commit (the expiry sweeper's call). */
  expireHolds(due: readonly { id: string; userId: string }[]): Promise<HoldExpiryResult[]>;
}

export function createLedgerService(deps: {
  database: Pick<DatabaseHandle, "db" | "query">;
  logger: Logger;
  writer?: LedgerWriterOptions;
  holds?: holds.HoldSettings;
}): LedgerService {
  const writer = createLedgerWriter(deps.database, deps.writer);
  return new Ledger(deps.database, writer, deps.logger, deps.holds ?? holds.DEFAULT_HOLD_SETTINGS);
}

class Ledger implements LedgerService {
  private readonly db: Database;

  constructor(
    private readonly database: Pick<DatabaseHandle, "db" | "query">,
    private readonly writer: ReturnType<typeof createLedgerWriter>,
    private readonly logger: Logger,
    private readonly holdSettings: holds.HoldSettings,
  ) {
    this.db = database.db;
  }

  balanceOf(userId: string): Promise<Balance> {
    return readBalance(this.database, userId);
  }

  async spend(userId: string, rawInput: unknown, options: SpendOptions = {}): Promise<SpendResult> {
    const input = parseInput(spendInputSchema, rawInput);
    const key = input.idempotencyKey ?? null;
    const metadata = input.metadata ?? null;
    const request: ChangeRequest = {
      userId,
      delta: -input.amount,
      kind: "SPEND",
      description: input.description,
      metadata,
      idempotencyKey: key,
      requestHash: key
        ? requestHash({ op: "spend", amount: input.amount, description: input.description, metadata })
        : null,
      rateLimit: options.rateLimit,
    };
    const refusals = ["insufficient", "key_reused", "rate_limited"] as const;
    const result = written(await this.apply(request, options), request, refusals);
    if (result.status === "applied" && !result.replayed) {
      const balance = result.entry.balanceAfter;
      (options.log ?? this.logger).info(
        { userId, amount: input.amount, balance, entryId: result.entry.id },
        `User ${userId} spent ${input.amount} tokens. New balance: ${balance}`,
      );
    }
    return result;
  }

  async grant(rawInput: unknown, grantedBy: string, options: WriteOptions = {}): Promise<GrantResult> {
    const input = parseInput(grantInputSchema, rawInput);
    const key = input.idempotencyKey ?? null;
    const request: ChangeRequest = {
      userId: input.userId,
      delta: input.amount,
      kind: "GRANT",
      description: input.reason,
      metadata: { grantedBy },
      idempotencyKey: key,
      requestHash: key ? requestHash({ op: "grant", amount: input.amount, reason: input.reason }) : null,
    };
    const result = written(await this.apply(request, options), request, ["balance_limit", "key_reused"]);
    if (result.status === "applied" && !result.replayed) {
      const { id, balanceAfter } = result.entry;
      (options.log ?? this.logger).info(
        { userId: input.userId, amount: input.amount, grantedBy, entryId: id },
        `Admin ${grantedBy} granted ${input.amount} tokens to user ${input.userId}. New balance: ${balanceAfter}`,
      );
    }
    return result;
  }

  async adjust(rawInput: unknown, adjustedBy: string, options: WriteOptions = {}): Promise<AdjustResult> {
    const input = parseInput(adjustInputSchema, rawInput);
    const key = input.idempotencyKey ?? null;
    const request: ChangeRequest = {
      userId: input.userId,
      delta: input.amount,
      kind: "ADJUSTMENT",
      description: input.reason,
      metadata: { adjustedBy },
      idempotencyKey: key,
      requestHash: key ? requestHash({ op: "adjust", amount: input.amount, reason: input.reason }) : null,
    };
    const refusals = ["insufficient", "balance_limit", "key_reused"] as const;
    const result = written(await this.apply(request, options), request, refusals);
    if (result.status === "applied" && !result.replayed) {
      const { id, balanceAfter } = result.entry;
      (options.log ?? this.logger).info(
        { userId: input.userId, amount: input.amount, adjustedBy, entryId: id },
        `Admin ${adjustedBy} adjusted user ${input.userId}'s tokens by ${input.amount}. New balance: ${balanceAfter}`,
      );
    }
    return result;
  }

  reverseSpend(input: unknown, by: string, options: WriteOptions = {}): Promise<SpendReversal> {
    return reverseSpend(
      this.db,
      (request) => this.apply(request, options),
      input,
      by,
      options.log ?? this.logger,
    );
  }

  transfer(rawInput: unknown, transferredBy: string, options: WriteOptions = {}): Promise<TransferResult> {
    return transferTokens(this.db, rawInput, transferredBy, options.log ?? this.logger);
  }

  refundPurchase(refund: PurchaseRefund, options: WriteOptions = {}): Promise<RefundResult> {
    return refundPurchase(options.executor ?? this.db, (request) => this.apply(request, options), refund);
  }

  extendLot(change: LotEndChange, options: WriteOptions = {}): Promise<LotEndResult> {
    return changeLotEnd((request) => this.apply(request, options), "extend", change);
  }

  cutLot(change: LotEndChange, options: WriteOptions = {}): Promise<LotEndResult> {
    return changeLotEnd((request) => this.apply(request, options), "cut", change);
  }

  expireDue(userIds: readonly string[]): Promise<ExpiryResult[]> {
    return expireDue((request) => this.apply(request, {}), userIds);
  }

  reverseRefund(reversal: RefundReversal, options: WriteOptions = {}): Promise<ReversalResult> {
    const apply = (request: ChangeRequest) => this.apply(request, options);
    return reverseRefund(options.executor ?? this.db, apply, reversal);
  }

  async importLegacy(legacy: LegacyImport, options: WriteOptions = {}): Promise<LegacyImportResult> {
    const request: ChangeRequest = {
      userId: legacy.userId,
      delta: legacy.tokens,
      kind: "LEGACY_IMPORT",
      description: "Balance carried over from the app's legacy token attribute",
      metadata: legacy.metadata,
      externalRef: legacyRef(legacy.customerId),
    };
    const outcome = await this.apply(request, options);
    if (outcome.status === "duplicate") return { status: "already-imported", entry: outcome.entry };
    const result = written(outcome, request, ["balance_limit"]);
    return result.status === "applied" ? { status: "imported", entry: result.entry } : result;
  }

  reserve(userId: string, input: unknown, options: SpendOptions = {}): Promise<ReserveResult> {
    return holds.reserve(this.holdContext(options), userId, input, options.rateLimit);
  }
  capture(holdId: string, input: unknown, actor: HoldActor, options: WriteOptions = {}) {
    return holds.capture(this.holdContext(options), holdId, input, actor);
  }
  release(holdId: string, actor: HoldActor, options: WriteOptions = {}): Promise<ReleaseResult> {
    return holds.release(this.holdContext(options), holdId, actor);
  }
  holdOf = (holdId: string, actor: HoldActor): Promise<Hold | null> => holds.holdOf(this.db, holdId, actor);
  holdsOf = (userId: string, query: holds.HoldQuery): Promise<HoldPage> =>
    holds.holdsOf(this.db, userId, query);
  expireHolds(due: readonly { id: string; userId: string }[]): Promise<HoldExpiryResult[]> {
    return holds.expireHolds(this.holdContext({}), due);
  }
  private holdContext({ executor, ...options }: WriteOptions): holds.HoldContext {
    const apply = (request: ChangeRequest) => this.apply(request, { executor, ...options });
    const read = holds.holdReader(this.database, executor);
    return { executor: executor ?? this.db, apply, settings: this.holdSettings, read };
  }

  /** Inside the caller's transaction when it gives one; by group commit otherwise. */
  private async apply(request: ChangeRequest, { executor }: WriteOptions): Promise<ChangeOutcome> {
    if (!executor) return this.writer.apply(request);
    const [outcome] = await applyChanges(executor, [request]);
    return outcome as ChangeOutcome;
  }
}
