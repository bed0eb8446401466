import { and, asc, desc, eq, gt, lt } from "drizzle-orm";
import type { Database, Executor } from "../../db/client.js";
import { type TransactionKind, tokenBalancesTable, tokenTransactionsTable } from "../../db/schema.js";

export interface Balance {
  readonly userId: string;
  readonly balance: number;
  readonly version: number;
  /** Null until the first entry. */
  readonly lastUpdated: Date | null;
}

export interface LedgerEntry {
  readonly id: number;
  readonly userId: string;
  readonly amount: number;
  readonly balanceAfter: number;
  readonly balanceVersion: number;
  readonly kind: TransactionKind;
  readonly description: string | null;
  readonly metadata: Record<string, unknown> | null;
  readonly externalRef: string | null;
  readonly createdAt: Date;
}

const entryColumns = {
  id: tokenTransactionsTable.id,
  userId: tokenTransactionsTable.userId,
  amount: tokenTransactionsTable.amount,
  balanceAfter: tokenTransactionsTable.balanceAfter,
  balanceVersion: tokenTransactionsTable.balanceVersion,
  kind: tokenTransactionsTable.kind,
  description: tokenTransactionsTable.description,
  metadata: tokenTransactionsTable.metadata,
  externalRef: tokenTransactionsTable.externalRef,
  createdAt: tokenTransactionsTable.createdAt,
};

export async function getBalance(db: Executor, userId: string): Promise<Balance> {
  const [row] = await db
    .select({
      balance: tokenBalancesTable.balance,
      version: tokenBalancesTable.version,
      lastUpdated: tokenBalancesTable.updatedAt,
    })
    .from(tokenBalancesTable)
    .where(eq(tokenBalancesTable.userId, userId));
  return row ? { userId, ...row } : { userId, balance: 0, version: 0, lastUpdated: null };
}

export async function getEntry(db: Database, userId: string, id: number): Promise<LedgerEntry | null> {
  const [row] = await db
    .select(entryColumns)
    .from(tokenTransactionsTable)
    .where(and(eq(tokenTransactionsTable.userId, userId), eq(tokenTransactionsTable.id, id)));
  return row ?? null;
}

export interface EntryPage {
  /** Entries older than this id (the next page of a newest-first list). */
  readonly olderThan?: number | undefined;
  /** Entries newer than this id. */
  readonly newerThan?: number | undefined;
  readonly limit: number;
  /** Oldest first instead of newest first (for paging backwards). */
  readonly oldestFirst?: boolean | undefined;
}

/** A page of one user's entries, newest first unless asked otherwise; keyset-paged on the id. */
export async function listEntries(db: Database, userId: string, page: EntryPage): Promise<LedgerEntry[]> {
  const conditions = [eq(tokenTransactionsTable.userId, userId)];
  if (page.olderThan !== undefined) conditions.push(lt(tokenTransactionsTable.id, page.olderThan));
  if (page.newerThan !== undefined) conditions.push(gt(tokenTransactionsTable.id, page.newerThan));
  return db
    .select(entryColumns)
    .from(tokenTransactionsTable)
    .where(and(...conditions))
    .orderBy(page.oldestFirst ? asc(tokenTransactionsTable.id) : desc(tokenTransactionsTable.id))
    .limit(page.limit);
}

/** The entry a client idempotency key produced, with the hash of the request that made it. */
export async function findByIdempotencyKey(
  db: Executor,
  userId: string,
  kind: TransactionKind,
  idempotencyKey: string,
): Promise<{ entry: LedgerEntry; requestHash: string | null } | null> {
  const [row] = await db
    .select({ ...entryColumns, requestHash: tokenTransactionsTable.requestHash })
    .from(tokenTransactionsTable)
    .where(
      and(
        eq(tokenTransactionsTable.userId, userId),
        eq(tokenTransactionsTable.kind, kind),
        eq(tokenTransactionsTable.idempotencyKey, idempotencyKey),
      ),
    );
  if (!row) return null;
  const { requestHash, ...entry } = row;
  return { entry, requestHash };
}

/** The entry of one kind that answers to an outside reference, such as a store transaction. */
export async function findByExternalRef(
  db: Executor,
  kind: TransactionKind,
  externalRef: string,
): Promise<LedgerEntry | null> {
  const [row] = await db
    .select(entryColumns)
    .from(tokenTransactionsTable)
    .where(and(eq(tokenTransactionsTable.kind, kind), eq(tokenTransactionsTable.externalRef, externalRef)));
  return row ?? null;
}
