import { sql } from "drizzle-orm";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queryRows } from "../../src/db/client.js";
import { entriesPage, getBalance, listEntries } from "../../src/modules/ledger/ledger.queries.js";
import {
  createLedgerService,
  type LedgerService,
  type SpendResult,
  type WriteResult,
} from "../../src/modules/ledger/ledger.service.js";
import { newUserId } from "../helpers/app.js";
import { driverName, openTestDatabase, type TestDatabase } from "../helpers/database.js";
import { wholeTableReads } from "../helpers/table-reads.js";

let database: TestDatabase;
let ledger: LedgerService;

beforeAll(async () => {
  database = await openTestDatabase();
  ledger = createLedgerService({ database: database.handle, logger: pino({ level: "silent" }) });
});
afterAll(() => database.close());

async function funded(amount: number): Promise<string> {
  const userId = newUserId();
  await ledger.grant({ userId, amount, reason: "test funding" }, "test");
  return userId;
}

/** A result that must have been written: its entry (the test fails on a refusal). */
function applied(result: SpendResult): WriteResult {
  expect(result).toMatchObject({ status: "applied" });
  return result as WriteResult;
}

describe(`ledger service on ${driverName}`, () => {
  it("spends, appends a signed entry with balance_after, and bumps the version by one", async () => {
    const userId = await funded(100);
    const { entry, replayed } = applied(await ledger.spend(userId, { amount: 30, description: "a hat" }));
    expect(replayed).toBe(false);
    expect(entry).toMatchObject({ userId, amount: -30, balanceAfter: 70, kind: "SPEND", balanceVersion: 2 });
    expect(await getBalance(database.handle.db, userId)).toMatchObject({ balance: 70, version: 2 });
  });

  it("refuses to overdraw and writes nothing", async () => {
    const userId = await funded(5);
    expect(await ledger.spend(userId, { amount: 6, description: "too much" })).toEqual({
      status: "insufficient",
      required: 6,
      available: 5,
    });
    expect(await getBalance(database.handle.db, userId)).toMatchObject({ balance: 5, version: 1 });
    expect(await listEntries(database.handle.db, userId, { limit: 10 })).toHaveLength(1);
  });

  it("treats a user without a balance row as having 0", async () => {
    const userId = newUserId();
    expect(await ledger.spend(userId, { amount: 1, description: "x" })).toMatchObject({
      status: "insufficient",
      available: 0,
    });
    expect(await getBalance(database.handle.db, userId)).toEqual({
      userId,
      balance: 0,
      held: 0,
      version: 0,
      lastUpdated: null,
    });
  });

  it("a page of entries comes in the user index's own order at any depth, never from a walk of the whole ledger", async () => {
    const userId = await funded(10);
    // With sorting priced out, the plan shows which index can give a page in order by itself. Before,
    // only the primary key could (walked backwards, filtered on the user): a page near a heavy
    // user's oldest entry read every older entry of every user.
    const plan = (page: Parameters<typeof entriesPage>[2]) =>
      database.handle.db.transaction(async (tx) => {
        await tx.execute(sql`SET LOCAL enable_sort = off`);
        await tx.execute(sql`SET LOCAL enable_seqscan = off`);
        const rows = await queryRows<Record<string, string>>(
          tx,
          sql`EXPLAIN ${entriesPage(tx, userId, page)}`,
        );
        return rows.map((row) => Object.values(row)[0]).join("\n");
      });
    for (const page of [
      { limit: 21 },
      { limit: 21, olderThan: 1_000_000 },
      { limit: 21, newerThan: 0, oldestFirst: true },
    ]) {
      const shown = await plan(page);
      expect(shown).toContain("token_transactions_user_newest");
      expect(shown).not.toContain("Sort");
    }
  });

  it("a change locks its balance through the primary key, never by reading every balance", async () => {
    // Enough balances that reading them all is what a planner picks for a join it cannot see into
    // (0004's lock was such a join: every batch read every balance, 1.2 ms at 10,000 users).
    const db = database.handle.db;
    await db.execute(
      sql`INSERT INTO token_balances (user_id, balance, version, updated_at)
          SELECT 'many-' || g, 0, 0, now() FROM generate_series(1, 10000) g ON CONFLICT DO NOTHING`,
    );
    await db.execute(sql`ANALYZE token_balances`);
    const userId = await funded(10);
    const reads = await db.transaction((tx) =>
      wholeTableReads(tx, ["token_balances"], async () => {
        await ledger.spend(userId, { amount: 1, description: "one" }, { executor: tx });
        await ledger.grant({ userId, amount: 2, reason: "two" }, "test", { executor: tx });
      }),
    );
    expect(reads).toEqual({ token_balances: 0 });
    expect(await getBalance(db, userId)).toMatchObject({ balance: 11, version: 3 });
  });

  it("200 concurrent spends of 1 against 50 give exactly 50 successes and a balance of 0", async () => {
    const userId = await funded(50);
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => ledger.spend(userId, { amount: 1, description: `race ${i}` })),
    );
    const ok = results.filter((r) => r.status === "applied");
    const refused = results.filter((r) => r.status !== "applied");
    expect(ok).toHaveLength(50);
    expect(refused.every((r) => r.status === "insufficient" && r.available === 0)).toBe(true);
    const balance = await getBalance(database.handle.db, userId);
    expect(balance).toMatchObject({ balance: 0, version: 51 });
    const entries = await listEntries(database.handle.db, userId, { limit: 500 });
    expect(entries).toHaveLength(51);
    // Versions are a gapless sequence and every balance_after is consistent with the amounts.
    const ordered = [...entries].reverse();
    let running = 0;
    ordered.forEach((entry, index) => {
      running += entry.amount;
      expect(entry.balanceVersion).toBe(index + 1);
      expect(entry.balanceAfter).toBe(running);
    });
  });

  it("replays an idempotency key: same entry, nothing written twice", async () => {
    const userId = await funded(100);
    const input = { amount: 10, description: "sword", metadata: { sku: "s1" }, idempotencyKey: "order-1" };
    const first = applied(await ledger.spend(userId, input));
    const again = applied(await ledger.spend(userId, { ...input, metadata: { sku: "s1" } }));
    expect(again.replayed).toBe(true);
    expect(again.entry).toEqual(first.entry);
    expect(await getBalance(database.handle.db, userId)).toMatchObject({ balance: 90, version: 2 });
  });

  it("replays even when the balance no longer covers the amount", async () => {
    const userId = await funded(10);
    const input = { amount: 10, description: "all of it", idempotencyKey: "drain" };
    const first = applied(await ledger.spend(userId, input));
    const again = await ledger.spend(userId, input);
    expect(again).toEqual({ status: "applied", entry: first.entry, replayed: true });
  });

  it("refuses an idempotency key reused with different input and changes nothing", async () => {
    const userId = await funded(100);
    await ledger.spend(userId, { amount: 10, description: "a", idempotencyKey: "k" });
    expect(await ledger.spend(userId, { amount: 11, description: "a", idempotencyKey: "k" })).toEqual({
      status: "key_reused",
      available: 90,
    });
    expect(await ledger.spend(userId, { amount: 10, description: "b", idempotencyKey: "k" })).toEqual({
      status: "key_reused",
      available: 90,
    });
    expect(await getBalance(database.handle.db, userId)).toMatchObject({ balance: 90, version: 2 });
  });

  it("keys are per user: two users may use the same key", async () => {
    const a = await funded(10);
    const b = await funded(10);
    await ledger.spend(a, { amount: 1, description: "x", idempotencyKey: "same" });
    const other = applied(await ledger.spend(b, { amount: 1, description: "x", idempotencyKey: "same" }));
    expect(other.replayed).toBe(false);
  });

  it("20 concurrent retries of one keyed spend write exactly one entry", async () => {
    const userId = await funded(100);
    const input = { amount: 7, description: "retry storm", idempotencyKey: "storm" };
    const results = (await Promise.all(Array.from({ length: 20 }, () => ledger.spend(userId, input)))).map(
      applied,
    );
    expect(new Set(results.map((r) => r.entry.id)).size).toBe(1);
    expect(results.filter((r) => !r.replayed)).toHaveLength(1);
    expect(await getBalance(database.handle.db, userId)).toMatchObject({ balance: 93, version: 2 });
  });

  it("refuses a credit past 2,000,000,000 and writes nothing", async () => {
    const userId = await funded(2_000_000_000);
    expect(await ledger.grant({ userId, amount: 1, reason: "one more" }, "test")).toEqual({
      status: "balance_limit",
      limit: 2_000_000_000,
      requested: 1,
      available: 2_000_000_000,
    });
    // A sum past the 32-bit range is the same clear refusal, not an integer overflow.
    expect(await ledger.grant({ userId, amount: 2_000_000_000, reason: "overflow" }, "test")).toMatchObject({
      status: "balance_limit",
      available: 2_000_000_000,
    });
    expect(await getBalance(database.handle.db, userId)).toMatchObject({
      balance: 2_000_000_000,
      version: 1,
    });
  });

  it.each([
    ["zero amount", { amount: 0, description: "x" }],
    ["negative amount", { amount: -5, description: "x" }],
    ["fractional amount", { amount: 1.5, description: "x" }],
    ["amount over the cap", { amount: 2_000_000_001, description: "x" }],
    ["empty description", { amount: 1, description: "  " }],
    ["long description", { amount: 1, description: "x".repeat(501) }],
    ["array metadata", { amount: 1, description: "x", metadata: [1, 2] }],
    ["oversized metadata", { amount: 1, description: "x", metadata: { blob: "x".repeat(5000) } }],
    ["empty idempotency key", { amount: 1, description: "x", idempotencyKey: "" }],
    ["long idempotency key", { amount: 1, description: "x", idempotencyKey: "k".repeat(256) }],
  ])("refuses %s and leaves the balance unchanged", async (_name, input) => {
    const userId = await funded(10);
    await expect(ledger.spend(userId, input as never)).rejects.toMatchObject({ name: "InvalidInputError" });
    expect(await getBalance(database.handle.db, userId)).toMatchObject({ balance: 10, version: 1 });
  });

  it("the database itself refuses UPDATE, DELETE and TRUNCATE of ledger entries", async () => {
    const userId = await funded(10);
    const db = database.handle.db;
    await expect(
      db.execute(sql`UPDATE token_transactions SET amount = 999 WHERE user_id = ${userId}`),
    ).rejects.toThrow();
    await expect(db.execute(sql`DELETE FROM token_transactions WHERE user_id = ${userId}`)).rejects.toThrow();
    await expect(db.execute(sql`TRUNCATE token_transactions`)).rejects.toThrow();
    const rows = await queryRows<{ amount: number }>(
      db,
      sql`SELECT amount FROM token_transactions WHERE user_id = ${userId}`,
    );
    expect(rows).toEqual([{ amount: 10 }]);
  });

  it("the database refuses a negative balance even from raw SQL", async () => {
    const userId = await funded(3);
    await expect(
      database.handle.db.execute(sql`UPDATE token_balances SET balance = -1 WHERE user_id = ${userId}`),
    ).rejects.toThrow();
    expect(await getBalance(database.handle.db, userId)).toMatchObject({ balance: 3 });
  });

  it("a statement that fails inside a transaction leaves no entry and no balance change", async () => {
    const userId = await funded(10);
    await expect(
      database.handle.db.transaction(async (tx) => {
        await ledger.spend(userId, { amount: 4, description: "rolled back" }, { executor: tx });
        throw new Error("abort");
      }),
    ).rejects.toThrow("abort");
    expect(await getBalance(database.handle.db, userId)).toMatchObject({ balance: 10, version: 1 });
  });
});
