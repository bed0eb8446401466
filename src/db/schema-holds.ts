import { sql } from "drizzle-orm";
import {
  bigint,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from "drizzle-orm/pg-core";
import { sqlList } from "./schema-checks.js";

// The holds' tables (issue 19), part of the schema: src/db/schema.ts exports them.

export const HOLD_STATUSES = ["active", "captured", "released", "expired"] as const;
export type HoldStatus = (typeof HOLD_STATUSES)[number];

/**
 * Holds (issue 19): tokens set aside for a job whose price is known only after it. An active hold's
 * tokens are counted in `token_balances.held` and stay in the user's lots until it ends: captured
 * (one SPEND entry, drawn like a spend), released, or expired (by its TTL). Where a lot ends while
 * some of its tokens are held, those are pinned to active holds (token_hold_pins, `pinned`) and
 * outlive the lot until their hold ends. Written only by the money function; its status changes,
 * so unlike entries it is not append-only.
 */
export const holdsTable = pgTable(
  "token_holds",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    userId: text("user_id").notNull(),
    amount: integer("amount").notNull(),
    status: text("status").$type<HoldStatus>().notNull(),
    /** What a capture took (CAP may take more than `amount`); null until captured. */
    captured: integer("captured"),
    /** Its tokens pinned from lots that ended while they were held (token_hold_pins). */
    pinned: integer("pinned").notNull().default(0),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull(),
    expiresAt: timestamp("expires_at", { withTimezone: true, mode: "date" }).notNull(),
    closedAt: timestamp("closed_at", { withTimezone: true, mode: "date" }),
    idempotencyKey: text("idempotency_key"),
    requestHash: text("request_hash"),
    description: text("description"),
    metadata: jsonb("metadata").$type<Record<string, unknown>>(),
  },
  (table) => [
    uniqueIndex("token_holds_user_key").on(table.userId, table.idempotencyKey),
    // The sweeper's question (which holds are due?) and the touch step's (this user's due holds).
    index("token_holds_due").on(table.expiresAt).where(sql`${table.status} = 'active'`),
    index("token_holds_user_active").on(table.userId, table.expiresAt).where(sql`${table.status} = 'active'`),
    index("token_holds_user_newest").on(table.userId, table.id.desc()),
    check(
      "token_holds_amounts",
      sql`${table.amount} > 0 AND (${table.captured} IS NULL OR ${table.captured} >= 0)`,
    ),
    check("token_holds_pinned_range", sql`${table.pinned} >= 0 AND ${table.pinned} <= ${table.amount}`),
    check("token_holds_status", sql`${table.status} IN (${sqlList(HOLD_STATUSES)})`),
    check(
      "token_holds_ttl",
      sql`${table.expiresAt} > ${table.createdAt} AND ${table.expiresAt} <= ${table.createdAt} + interval '24 hours'`,
    ),
  ],
);

/**
 * Held tokens that outlived their lot: made when a lot ends while some of its tokens are held, for
 * the active holds that end last first. A pin counts while its hold is active. Its amount only grows
 * (when the same lot ends again for the same hold, after an extension and a refill), and it is never
 * removed: a trigger refuses anything else (migrations 0013 and 0020).
 */
export const holdPinsTable = pgTable(
  "token_hold_pins",
  {
    holdId: bigint("hold_id", { mode: "number" }).notNull(),
    lotId: bigint("lot_id", { mode: "number" }).notNull(),
    amount: integer("amount").notNull(),
  },
  (table) => [
    primaryKey({ columns: [table.holdId, table.lotId] }),
    check("token_hold_pins_amount", sql`${table.amount} > 0`),
  ],
);
