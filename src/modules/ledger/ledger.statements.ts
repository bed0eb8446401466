import { type SQL, sql } from "drizzle-orm";
import { type Executor, queryRows } from "../../db/client.js";
import { CHECK_VIOLATION, UNIQUE_VIOLATION, violates } from "../../db/errors.js";
import { type EntryKind, MAX_BALANCE } from "../../db/schema.js";
import { BalanceLimitError, DuplicateReferenceError, InsufficientTokensError } from "./ledger.errors.js";
import { BALANCE_CHANGED_CHANNEL } from "./ledger.events.js";
import { type EntryRow, getBalance, type LedgerEntry, toEntry } from "./ledger.queries.js";

/**
 * The two statements that move money. Private to the ledger module: everything else calls the named
 * operations in ledger.service.ts. Each statement changes the balance, appends the entry with its
 * `balance_after` and version, and NOTIFYs, all at once: alone it is its own transaction, inside the
 * caller's transaction it commits (and its NOTIFY is delivered) with everything else.
 */

/** What an entry records beside its amount. */
export interface EntryDraft {
  readonly userId: string;
  readonly kind: EntryKind;
  readonly description: string | null;
  readonly metadata?: Record<string, unknown> | null | undefined;
  readonly idempotencyKey?: string | null | undefined;
  /** SHA-256 of the request that used the idempotency key; a reuse with other input is refused. */
  readonly requestHash?: string | null | undefined;
  /** What outside thing this entry answers to, such as a store transaction; unique per kind. */
  readonly externalRef?: string | null | undefined;
}

export const IDEMPOTENCY_KEY_INDEX = "token_transactions_user_kind_idempotency_key";
const EXTERNAL_REF_INDEX = "token_transactions_kind_external_ref";
const BALANCE_RANGE = "token_balances_balance_range";

/**
 * Adds `amount` (≥ 0) to the balance, creating it at the first credit. Throws BalanceLimitError when
 * the balance would pass MAX_BALANCE (the sum is taken as bigint and clamped just past the cap, so an
 * overflow is the CHECK's refusal, not an integer-out-of-range error).
 */
export function appendCredit(executor: Executor, draft: EntryDraft, amount: number): Promise<LedgerEntry> {
  const change = sql`INSERT INTO token_balances AS b (user_id, balance, version, updated_at)
      VALUES (${draft.userId}, ${amount}, 1, now())
      ON CONFLICT (user_id) DO UPDATE
        SET balance = LEAST(b.balance::bigint + EXCLUDED.balance, ${MAX_BALANCE + 1})::integer,
            version = b.version + 1, updated_at = now()
      RETURNING balance, version, updated_at`;
  return append(executor, draft, amount, change).then((entry) => entry as LedgerEntry);
}

/**
 * Takes `amount` (≥ 0) from the balance, only if it is there: the UPDATE's own condition refuses an
 * overdraft under the row lock. Throws InsufficientTokensError with the balance found.
 */
export async function appendDebit(
  executor: Executor,
  draft: EntryDraft,
  amount: number,
): Promise<LedgerEntry> {
  const change = sql`UPDATE token_balances
        SET balance = balance - ${amount}, version = version + 1, updated_at = now()
      WHERE user_id = ${draft.userId} AND balance >= ${amount}
      RETURNING balance, version, updated_at`;
  const entry = await append(executor, draft, -amount, change);
  if (entry) return entry;
  const { balance } = await getBalance(executor, draft.userId);
  throw new InsufficientTokensError(amount, balance);
}

async function append(
  executor: Executor,
  draft: EntryDraft,
  amount: number,
  balanceChange: SQL,
): Promise<LedgerEntry | undefined> {
  const metadata = draft.metadata ? JSON.stringify(draft.metadata) : null;
  try {
    const [row] = await queryRows<EntryRow>(
      executor,
      sql`WITH changed AS (${balanceChange}),
        entry AS (
          INSERT INTO token_transactions
            (user_id, amount, balance_after, balance_version, kind, description, metadata,
             idempotency_key, request_hash, external_ref, created_at)
          SELECT ${draft.userId}, ${amount}, changed.balance, changed.version, ${draft.kind},
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
    return row ? toEntry(row) : undefined;
  } catch (error) {
    if (violates(error, CHECK_VIOLATION, BALANCE_RANGE)) throw new BalanceLimitError(MAX_BALANCE, amount);
    if (violates(error, UNIQUE_VIOLATION, EXTERNAL_REF_INDEX)) {
      throw new DuplicateReferenceError(draft.externalRef ?? "");
    }
    throw error;
  }
}
