import { sql } from "drizzle-orm";
import {
  bigint,
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
} from "drizzle-orm/pg-core";
import { sqlList } from "./schema-checks.js";

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
  "EXPIRE",
] as const;
export type EntryKind = (typeof ENTRY_KINDS)[number];

/** The most tokens one balance may hold (and so the largest amount one entry may move). */
export const MAX_BALANCE = 2_000_000_000;
/** The longest user id (JWT `sub`, RevenueCat app_user_id) a balance can belong to. */
export const MAX_USER_ID_LENGTH = 255;

export const balancesTable = pgTable(
  "token_balances",
  {
    userId: text("user_id").primaryKey(),
    balance: integer("balance").notNull().default(0),
    /** Grows by exactly one with every committed change, so a client can see a gap and re-sync. */
    version: integer("version").notNull().default(0),
    /**
     * Tokens set aside by active holds (still part of `balance`); what a spend may use is
     * `balance - held`. Always 0 until holds exist. They stay in the user's lots, as the first `held`
     * tokens of the lots laid end to end soonest-expiring first, except `pinned` of them.
     */
    held: integer("held").notNull().default(0),
    /**
     * Held tokens outside the lots: pinned by active holds (token_hold_pins) from lots that ended
     * while they were held. `held - pinned` is where a draw starts in the user's lots.
     */
    pinned: integer("pinned").notNull().default(0),
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  },
  (table) => [
    check(
      "token_balances_balance_range",
      sql`${table.balance} >= 0 AND ${table.balance} <= ${sql.raw(String(MAX_BALANCE))}`,
    ),
    check("token_balances_version_nonnegative", sql`${table.version} >= 0`),
    check("token_balances_held_range", sql`${table.held} >= 0 AND ${table.held} <= ${table.balance}`),
    check("token_balances_pinned_range", sql`${table.pinned} >= 0 AND ${table.pinned} <= ${table.held}`),
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

/** Where a lot's tokens came from. */
export const LOT_SOURCES = [
  /** A one-time purchase (a token pack): never expires (App Review Guideline 3.1.1). */
  "pack",
  /** One period of a subscription: `[starts_at, expires_at)`. */
  "period",
  /** A subscription's trial period. */
  "trial",
  /** An operator's grant or adjustment, a transfer's credit. */
  "grant",
  /** What a lot with a rollover rule carried into the next period. */
  "rollover",
  /** Tokens given back by a refund's reversal or a reversed spend. */
  "restore",
  /** A legacy import, and the balances that existed before lots (migration 0010). */
  "legacy",
] as const;
export type LotSource = (typeof LOT_SOURCES)[number];

/**
 * Lots: one row per grant of tokens, with what is left of it and when it stops being usable
 * (`expires_at`, half-open; NULL: never). Written only by the money function. A
 * balance is the sum of its user's lots' `remaining` plus what active holds pin from them.
 */
export const lotsTable = pgTable(
  "token_lots",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    userId: text("user_id").notNull(),
    source: text("source").$type<LotSource>().notNull(),
    /** The store transaction it came from (`STORE:transaction_id`): each opens at most one lot. */
    sourceRef: text("source_ref"),
    /** The subscription chain (`STORE:original_transaction_id`, or a configured credit group). */
    chainRef: text("chain_ref"),
    productId: text("product_id"),
    granted: integer("granted").notNull(),
    remaining: integer("remaining").notNull(),
    /** Tokens written off unused when the lot expired or was superseded (refund arithmetic). */
    expired: integer("expired").notNull().default(0),
    startsAt: timestamp("starts_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
    expiresAt: timestamp("expires_at", { withTimezone: true, mode: "date" }),
    /** The product's rollover rule when the lot was granted, e.g. `{"cap": 500}`. */
    rollover: jsonb("rollover").$type<{ cap: number }>(),
    /** The entry that opened the lot (none for the lots migration 0010 opened for old balances). */
    entryId: bigint("entry_id", { mode: "number" }),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
    /**
     * Whether anything is left (`remaining > 0`), kept by PostgreSQL: the draw and due indexes are
     * partial on it rather than on `remaining`, so a spend that leaves tokens in its lot changes no
     * indexed column and its update is HOT (migration 0014, with the table's fillfactor 80).
     */
    open: boolean("open").generatedAlwaysAs(sql`remaining > 0`),
  },
  (table) => [
    uniqueIndex("token_lots_source_ref").on(table.sourceRef).where(sql`${table.sourceRef} IS NOT NULL`),
    // The draw order: soonest expiry first, then oldest, non-expiring last.
    index("token_lots_draw")
      .on(table.userId, sql`${table.expiresAt} ASC NULLS LAST`, table.id)
      .where(sql`${table.open}`),
    // The sweeper's question: which lots are due?
    index("token_lots_due").on(table.expiresAt).where(sql`${table.open} AND ${table.expiresAt} IS NOT NULL`),
    index("token_lots_chain").on(table.chainRef).where(sql`${table.chainRef} IS NOT NULL`),
    check(
      "token_lots_amounts",
      sql`${table.granted} >= 0 AND ${table.remaining} >= 0 AND ${table.expired} >= 0`,
    ),
    check("token_lots_source", sql`${table.source} IN (${sqlList(LOT_SOURCES)})`),
  ],
);

/**
 * Which entry moved how much of which lot (signed: a credit's move is positive, a spend's negative;
 * an expiry's is negative, an extension's 0 with its reason). Append-only, like the entries.
 */
export const lotMovesTable = pgTable(
  "token_lot_moves",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    entryId: bigint("entry_id", { mode: "number" }),
    lotId: bigint("lot_id", { mode: "number" }).notNull(),
    amount: integer("amount").notNull(),
    /** Why, when the entry's kind does not say it: superseded, extend, cut, rollover, born_expired. */
    reason: text("reason"),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  },
  (table) => [index("token_lot_moves_entry").on(table.entryId), index("token_lot_moves_lot").on(table.lotId)],
);

export const WEBHOOK_OUTCOMES = [
  "processing",
  "credited",
  "refunded",
  "refund_reversed",
  /** SUBSCRIPTION_EXTENDED moved a subscription lot's end later. */
  "extended",
  /** An EXPIRATION before a subscription lot's end ended it early. */
  "cut",
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
    /** A credited subscription period's chain (`group:<creditGroup>` or `<STORE>:<original transaction>`). */
    chainRef: text("chain_ref"),
  },
  (table) => [
    index("revenuecat_events_outcome").on(table.outcome),
    index("revenuecat_events_transaction").on(table.store, table.transactionId),
    index("revenuecat_events_chain")
      .on(table.userId, table.chainRef)
      .where(sql`${table.chainRef} IS NOT NULL`),
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

export * from "./schema-holds.js";
