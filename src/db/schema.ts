import { sql } from "drizzle-orm";
import {
  bigint,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
} from "drizzle-orm/pg-core";

/** Every kind of ledger entry. Corrections are new entries of their own kind, never edits. */
export const ENTRY_KINDS = [
  "SPEND",
  "GRANT",
  "PURCHASE",
  "REFUND",
  "REFUND_REVERSAL",
  "LEGACY_IMPORT",
  "ADJUSTMENT",
  "TRANSFER",
] as const;
export type EntryKind = (typeof ENTRY_KINDS)[number];

/** The most tokens one balance may hold (and so the largest amount one entry may move). */
export const MAX_BALANCE = 2_000_000_000;
/** The longest user id (JWT `sub`, RevenueCat app_user_id) a balance can belong to. */
export const MAX_USER_ID_LENGTH = 255;

/** `'A', 'B', ...` for a CHECK constraint; the values are our own constants, never input. */
const sqlList = (values: readonly string[]) => sql.raw(values.map((value) => `'${value}'`).join(", "));

export const balancesTable = pgTable(
  "token_balances",
  {
    userId: text("user_id").primaryKey(),
    balance: integer("balance").notNull().default(0),
    /** Grows by exactly one with every committed change, so a client can see a gap and re-sync. */
    version: integer("version").notNull().default(0),
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  },
  (table) => [
    check(
      "token_balances_balance_range",
      sql`${table.balance} >= 0 AND ${table.balance} <= ${sql.raw(String(MAX_BALANCE))}`,
    ),
    check("token_balances_version_nonnegative", sql`${table.version} >= 0`),
    check(
      "token_balances_user_id_length",
      sql`char_length(${table.userId}) BETWEEN 1 AND ${sql.raw(String(MAX_USER_ID_LENGTH))}`,
    ),
  ],
);

/** The ledger: one immutable row per balance change (the SQL name is the seed's). */
export const ledgerEntriesTable = pgTable(
  "token_transactions",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    userId: text("user_id").notNull(),
    /** Signed: credits are positive, debits negative. */
    amount: integer("amount").notNull(),
    balanceAfter: integer("balance_after").notNull(),
    balanceVersion: integer("balance_version").notNull(),
    kind: text("kind").$type<EntryKind>().notNull(),
    description: text("description"),
    metadata: jsonb("metadata").$type<Record<string, unknown>>(),
    idempotencyKey: text("idempotency_key"),
    /** SHA-256 of the request that used the idempotency key; a reuse with other input is refused. */
    requestHash: text("request_hash"),
    /** What outside thing this entry answers to, such as a store transaction. */
    externalRef: text("external_ref"),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  },
  (table) => [
    index("token_transactions_user_newest").on(table.userId, table.id.desc()),
    // Keys are scoped by kind, so an operator's grant key and the user's own spend key never collide.
    uniqueIndex("token_transactions_user_kind_idempotency_key")
      .on(table.userId, table.kind, table.idempotencyKey)
      .where(sql`${table.idempotencyKey} IS NOT NULL`),
    uniqueIndex("token_transactions_kind_external_ref")
      .on(table.kind, table.externalRef)
      .where(sql`${table.externalRef} IS NOT NULL`),
    check(
      "token_transactions_balance_after_range",
      sql`${table.balanceAfter} BETWEEN 0 AND ${sql.raw(String(MAX_BALANCE))}`,
    ),
    check("token_transactions_kind", sql`${table.kind} IN (${sqlList(ENTRY_KINDS)})`),
  ],
);

export const WEBHOOK_OUTCOMES = [
  "processing",
  "credited",
  "refunded",
  "refund_reversed",
  "duplicate",
  "ignored",
  "held",
  "unmapped",
  "unmatched",
  "failed",
] as const;
export type WebhookOutcome = (typeof WEBHOOK_OUTCOMES)[number];

/** Every accepted RevenueCat delivery, whatever became of it. */
export const revenuecatEventsTable = pgTable(
  "revenuecat_events",
  {
    eventId: text("event_id").primaryKey(),
    type: text("type").notNull(),
    appUserId: text("app_user_id"),
    /** The user whose balance the event touched, after alias resolution. */
    userId: text("user_id"),
    environment: text("environment"),
    store: text("store"),
    productId: text("product_id"),
    transactionId: text("transaction_id"),
    rawBody: text("raw_body").notNull(),
    outcome: text("outcome").$type<WebhookOutcome>().notNull(),
    detail: text("detail"),
    ledgerEntryId: bigint("ledger_entry_id", { mode: "number" }),
    deliveries: integer("deliveries").notNull().default(1),
    receivedAt: timestamp("received_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
    processedAt: timestamp("processed_at", { withTimezone: true, mode: "date" }),
  },
  (table) => [
    index("revenuecat_events_outcome").on(table.outcome),
    index("revenuecat_events_transaction").on(table.store, table.transactionId),
  ],
);

/** Counters of rate-limiter-flexible's Drizzle store, shared by every instance on this database. */
export const rateLimitsTable = pgTable("rate_limits", {
  key: text("key").primaryKey(),
  points: integer("points").notNull(),
  expire: timestamp("expire", { withTimezone: true, mode: "date" }),
});

/**
 * Legacy attributes deleted from RevenueCat after their balance was imported, one row a customer, so
 * a later run retries only the clears that failed.
 */
export const legacyAttributeClearsTable = pgTable("legacy_attribute_clears", {
  customerId: text("customer_id").primaryKey(),
  attribute: text("attribute").notNull(),
  clearedAt: timestamp("cleared_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
});
