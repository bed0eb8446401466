import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import { expect } from "vitest";
import { queryRows } from "../../src/db/client.js";
import { applyChanges } from "../../src/modules/ledger/ledger.statements.js";
import type { TestApp } from "../helpers/app.js";
import { SPEND } from "../helpers/ledger.js";
import { type Delivery, deliver, fixture } from "../helpers/revenuecat.js";

// The golden rows of subscription credits (design §E rows 1–28) go through the real webhook route with
// RevenueCat's documented delivery bodies (test/fixtures/revenuecat/), fresh ids per delivery. These
// build the deliveries of one subscription, read a user's lots and entries, and stand in for the
// sweeper (an `expire` request, what it sends).

export const HOUR = 3_600_000;
export const DAY = 24 * HOUR;

export const PRODUCT_TOKEN_MAP = {
  pack_300: 300,
  pack_500: 500,
  pro_monthly: { tokens: 1000, expires: "period_end" },
  pro_monthly_alt: { tokens: 1000, expires: "period_end" },
  pro_max: { tokens: 3000, expires: "period_end" },
  pro_rollover: { tokens: 1000, expires: "period_end", rollover: { cap: 500 } },
  pro_trial: { tokens: 1000, expires: "period_end", trialTokens: 50 },
  pro_intro: { tokens: 1000, expires: "period_end", introTokens: 400 },
  play_sub: { tokens: 1000, expires: "period_end" },
  "pro:monthly": { tokens: 800, expires: "period_end", creditGroup: "pro" },
  "pro:annual": { tokens: 12000, expires: "period_end", creditGroup: "pro" },
};

/** A new store transaction id. */
export function transactionId(): string {
  return `${Date.now()}${Math.floor(Math.random() * 1e9)}`;
}

/**
 * One subscription of one user: each call builds the next documented delivery, with a fresh event id,
 * a fresh transaction id per period and the subscription's original transaction id.
 */
export class Subscription {
  readonly original = transactionId();
  constructor(
    readonly userId: string,
    readonly productId = "pro_monthly",
    readonly store = "APP_STORE",
  ) {}

  /** A period (INITIAL_PURCHASE or RENEWAL) from `from` to `to` (epoch ms). */
  period(type: "INITIAL_PURCHASE" | "RENEWAL", from: number, to: number, more: Record<string, unknown> = {}) {
    return this.event(`${type}__rc-docs`, {
      transaction_id: transactionId(),
      purchased_at_ms: from,
      expiration_at_ms: to,
      event_timestamp_ms: from,
      ...more,
    });
  }

  /** Any documented event of this subscription. */
  event(name: string, more: Record<string, unknown> = {}): Delivery {
    return fixture(name, {
      app_user_id: this.userId,
      original_app_user_id: this.userId,
      aliases: [this.userId],
      product_id: this.productId,
      store: this.store,
      original_transaction_id: this.original,
      ...more,
    });
  }
}

/** Delivers a body and answers its outcome, after checking RevenueCat got a 200. */
export async function send(t: TestApp, body: Delivery): Promise<{ outcome?: string; detail?: string }> {
  const response = await deliver(t.url, body);
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return response.body;
}

export const storeRef = (body: Delivery) => `${body.event.store}:${body.event.transaction_id}`;

export interface Lot {
  source: string;
  sourceRef: string | null;
  chainRef: string | null;
  productId: string | null;
  granted: number;
  remaining: number;
  expired: number;
  startsAt: string;
  expiresAt: string | null;
}

export async function lotsOf(t: TestApp, userId: string): Promise<Lot[]> {
  const rows = await queryRows<Record<string, unknown>>(
    t.db.handle.db,
    sql`SELECT source, source_ref, chain_ref, product_id, granted, remaining, expired, starts_at, expires_at
          FROM token_lots WHERE user_id = ${userId} ORDER BY id`,
  );
  return rows.map((row) => ({
    source: String(row.source),
    sourceRef: (row.source_ref as string | null) ?? null,
    chainRef: (row.chain_ref as string | null) ?? null,
    productId: (row.product_id as string | null) ?? null,
    granted: Number(row.granted),
    remaining: Number(row.remaining),
    expired: Number(row.expired),
    startsAt: new Date(row.starts_at as string).toISOString(),
    expiresAt: row.expires_at == null ? null : new Date(row.expires_at as string).toISOString(),
  }));
}

export interface Entry {
  kind: string;
  amount: number;
  metadata: Record<string, unknown> | null;
}

export async function entriesOf(t: TestApp, userId: string): Promise<Entry[]> {
  const rows = await queryRows<Record<string, unknown>>(
    t.db.handle.db,
    sql`SELECT kind, amount, metadata FROM token_transactions WHERE user_id = ${userId} ORDER BY id`,
  );
  return rows.map((row) => ({
    kind: String(row.kind),
    amount: Number(row.amount),
    metadata: (row.metadata as Record<string, unknown> | null) ?? null,
  }));
}

/** The user's balance, checked against the sum of their lots and of their entries. */
export async function balanceOf(t: TestApp, userId: string): Promise<number> {
  const [row] = await queryRows<Record<string, unknown>>(
    t.db.handle.db,
    sql`SELECT
          coalesce((SELECT balance FROM token_balances WHERE user_id = ${userId}), 0) AS balance,
          coalesce((SELECT sum(remaining) FROM token_lots WHERE user_id = ${userId}), 0) AS lots,
          coalesce((SELECT sum(amount) FROM token_transactions WHERE user_id = ${userId}), 0) AS entries`,
  );
  const sums = { balance: Number(row?.balance), lots: Number(row?.lots), entries: Number(row?.entries) };
  expect(sums, `balance, Σ lots, Σ entries of ${userId}`).toEqual({
    balance: sums.balance,
    lots: sums.balance,
    entries: sums.balance,
  });
  return sums.balance;
}

/** What the sweeper does for a user: an `expire` request through the money function. */
export async function sweep(t: TestApp, userId: string): Promise<void> {
  await t.db.handle.db.transaction((tx) =>
    applyChanges(tx, [{ userId, delta: 0, kind: "EXPIRE", description: null, op: "expire" }]),
  );
}

/** Spends through the API, as the app does. */
export async function spend(t: TestApp, userId: string, amount: number): Promise<void> {
  const result = await t.gql(
    SPEND,
    { input: { amount, description: "used", idempotencyKey: randomUUID() } },
    await t.token(userId),
  );
  expect(result.data, JSON.stringify(result)).toMatchObject({ spendTokens: { success: true } });
}

/** Waits until `at` (epoch ms) has passed. */
export async function until(at: number): Promise<void> {
  const wait = at - Date.now() + 50;
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
}

export const iso = (ms: number) => new Date(ms).toISOString();
