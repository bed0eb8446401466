import { createHash } from "node:crypto";
import { sql } from "drizzle-orm";
import type { Logger } from "pino";
import stringify from "safe-stable-stringify";
import { type Database, type Executor, queryRows } from "../../db/client.js";
import { CHECK_VIOLATION, pgErrorOf, UNIQUE_VIOLATION, withTransactionRetry } from "../../db/errors.js";
import { MAX_BALANCE, type TransactionKind } from "../../db/schema.js";
import {
  BalanceLimitError,
  DuplicateReferenceError,
  IdempotencyConflictError,
  InsufficientTokensError,
} from "./ledger.errors.js";
import { findByIdempotencyKey, getBalance, type LedgerEntry } from "./ledger.queries.js";
import { type GrantInput, grantInputSchema, type SpendInput, spendInputSchema } from "./ledger.validation.js";

/** The NOTIFY channel every committed balance change is announced on. */
export const BALANCE_CHANGED_CHANNEL = "token_balance_changed";

/** What the NOTIFY payload carries; the entry itself is loaded only when a subscriber asks for it. */
export interface BalanceChangedMessage {
  readonly userId: string;
  readonly balance: number;
  readonly delta: number;
  readonly version: number;
  readonly entryId: number;
  readonly at: string;
}

export interface WriteResult {
  readonly entry: LedgerEntry;
  /** True when an idempotency key matched an earlier, identical request: nothing was written. */
  readonly replayed: boolean;
}

/** One ledger entry to append. Positive amounts credit, negative amounts debit. */
export interface EntryDraft {
  readonly userId: string;
  readonly amount: number;
  readonly kind: TransactionKind;
  readonly description: string | null;
  readonly metadata?: Record<string, unknown> | null | undefined;
  readonly idempotencyKey?: string | null | undefined;
  readonly requestHash?: string | null | undefined;
  readonly externalRef?: string | null | undefined;
}

interface EntryRow {
  id: string | number;
  user_id: string;
  amount: number;
  balance_after: number;
  balance_version: number;
  kind: TransactionKind;
  description: string | null;
  metadata: Record<string, unknown> | string | null;
  external_ref: string | null;
  created_at: Date | string;
}

/**
 * Appends one entry and moves the balance with it, in ONE statement: the balance update (conditional
 * for debits, an upsert for credits), the entry insert and the NOTIFY. A single statement is its own
 * transaction when run alone, and joins the caller's when given one; PostgreSQL delivers the NOTIFY
 * only when that transaction commits. Returns null when a debit would overdraw.
 */
export async function appendEntry(executor: Executor, draft: EntryDraft): Promise<LedgerEntry | null> {
  const balanceChange =
    draft.amount < 0
      ? sql`UPDATE token_balances
              SET balance = balance + ${draft.amount}, version = version + 1, updated_at = now()
            WHERE user_id = ${draft.userId} AND balance + ${draft.amount} >= 0
        RETURNING balance, version, updated_at`
      : sql`INSERT INTO token_balances AS b (user_id, balance, version, updated_at)
            VALUES (${draft.userId}, ${draft.amount}, 1, now())
            ON CONFLICT (user_id) DO UPDATE
              -- Summed as bigint and clamped just past the cap, so an overflow is the CHECK
              -- constraint's refusal rather than an integer-out-of-range error.
              SET balance = LEAST(b.balance::bigint + EXCLUDED.balance, ${MAX_BALANCE + 1})::integer,
                  version = b.version + 1, updated_at = now()
        RETURNING balance, version, updated_at`;
  const metadata = draft.metadata ? JSON.stringify(draft.metadata) : null;
  try {
    const [row] = await queryRows<EntryRow>(
      executor,
      sql`WITH changed AS (${balanceChange}),
        entry AS (
          INSERT INTO token_transactions
            (user_id, amount, balance_after, balance_version, kind, description, metadata,
             idempotency_key, request_hash, external_ref, created_at)
          SELECT ${draft.userId}, ${draft.amount}, changed.balance, changed.version, ${draft.kind},
                 ${draft.description}, ${metadata}::jsonb, ${draft.idempotencyKey ?? null},
                 ${draft.requestHash ?? null}, ${draft.externalRef ?? null}, changed.updated_at
            FROM changed
          RETURNING *
        )
      SELECT entry.*, pg_notify(${BALANCE_CHANGED_CHANNEL}, json_build_object(
               'userId', entry.user_id, 'balance', entry.balance_after, 'delta', entry.amount,
               'version', entry.balance_version, 'entryId', entry.id, 'at', entry.created_at)::text)
        FROM entry`,
    );
    return row ? toEntry(row) : null;
  } catch (error) {
    const pg = pgErrorOf(error);
    if (pg?.code === CHECK_VIOLATION && pg.constraint === "token_balances_balance_range") {
      throw new BalanceLimitError(MAX_BALANCE, draft.amount);
    }
    if (pg?.code === UNIQUE_VIOLATION && pg.constraint === "token_transactions_kind_external_ref") {
      throw new DuplicateReferenceError(draft.externalRef ?? "");
    }
    throw error;
  }
}

function isKeyConflict(error: unknown): boolean {
  const pg = pgErrorOf(error);
  return pg?.code === UNIQUE_VIOLATION && pg.constraint === "token_transactions_user_kind_idempotency_key";
}

function toEntry(row: EntryRow): LedgerEntry {
  return {
    id: Number(row.id),
    userId: row.user_id,
    amount: row.amount,
    balanceAfter: row.balance_after,
    balanceVersion: row.balance_version,
    kind: row.kind,
    description: row.description,
    metadata:
      typeof row.metadata === "string" ? (JSON.parse(row.metadata) as Record<string, unknown>) : row.metadata,
    externalRef: row.external_ref,
    createdAt: row.created_at instanceof Date ? row.created_at : new Date(row.created_at),
  };
}

export function requestHash(request: unknown): string {
  return createHash("sha256")
    .update(stringify(request) ?? "")
    .digest("hex");
}

/** Each call may bring the request's logger, so its lines carry the request id. */
export interface LedgerService {
  spend(userId: string, input: SpendInput, log?: Logger): Promise<WriteResult>;
  grant(input: GrantInput & { grantedBy: string }, log?: Logger): Promise<WriteResult>;
}

export function createLedgerService(deps: { db: Database; logger: Logger }): LedgerService {
  const { db, logger } = deps;

  /**
   * Writes a client-keyed entry exactly once. The unique (user, key) index is the guard: a concurrent
   * twin fails on it and then finds the winner's entry, so both callers see the same result.
   */
  async function writeOnce(draft: EntryDraft, required: number): Promise<WriteResult> {
    const key = draft.idempotencyKey;
    let entry: LedgerEntry | null;
    try {
      entry = await withTransactionRetry(() => appendEntry(db, draft));
    } catch (error) {
      // A replay fails like a new request would (the key's unique index, or a balance limit the
      // original already used up); either way the earlier entry, if any, is the answer.
      if (!key || !(isKeyConflict(error) || error instanceof BalanceLimitError)) throw error;
      const replay = await replayOf(draft, key);
      if (replay) return replay;
      throw error;
    }
    if (entry) return { entry, replayed: false };
    const replay = key ? await replayOf(draft, key) : null;
    if (replay) return replay;
    const { balance } = await getBalance(db, draft.userId);
    throw new InsufficientTokensError(required, balance);
  }

  async function replayOf(draft: EntryDraft, key: string): Promise<WriteResult | null> {
    const earlier = await findByIdempotencyKey(db, draft.userId, draft.kind, key);
    if (!earlier) return null;
    if (earlier.requestHash !== draft.requestHash) throw new IdempotencyConflictError(key);
    return { entry: earlier.entry, replayed: true };
  }

  return {
    async spend(userId, rawInput, log = logger) {
      const input = spendInputSchema.parse(rawInput);
      const result = await writeOnce(
        {
          userId,
          amount: -input.amount,
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
        },
        input.amount,
      );
      if (!result.replayed) {
        log.info(
          { userId, amount: input.amount, balance: result.entry.balanceAfter, entryId: result.entry.id },
          `User ${userId} spent ${input.amount} tokens. New balance: ${result.entry.balanceAfter}`,
        );
      }
      return result;
    },

    async grant(rawInput, log = logger) {
      const input = grantInputSchema.parse(rawInput);
      const result = await writeOnce(
        {
          userId: input.userId,
          amount: input.amount,
          kind: "GRANT",
          description: input.reason,
          metadata: { grantedBy: rawInput.grantedBy },
          idempotencyKey: input.idempotencyKey ?? null,
          requestHash: input.idempotencyKey
            ? requestHash({ op: "grant", amount: input.amount, reason: input.reason })
            : null,
        },
        0,
      );
      if (!result.replayed) {
        log.info(
          {
            userId: input.userId,
            amount: input.amount,
            grantedBy: rawInput.grantedBy,
            entryId: result.entry.id,
          },
          `Admin ${rawInput.grantedBy} granted ${input.amount} tokens to user ${input.userId}. New balance: ${result.entry.balanceAfter}`,
        );
      }
      return result;
    },
  };
}
