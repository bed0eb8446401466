import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signDevToken } from "../../src/auth/jwt.js";
import { openDatabase, queryRows } from "../../src/db/client.js";
import { createLedgerService, type LedgerService } from "../../src/modules/ledger/ledger.service.js";
import { createLedgerWriter } from "../../src/modules/ledger/ledger.writer.js";
import { JWT_SECRET, newUserId, useTestApp } from "../helpers/app.js";
import { driverName, openTestDatabase, serverUrl, type TestDatabase } from "../helpers/database.js";
import { BalanceSubscription, wsClient } from "../helpers/live.js";
import { startServerProcess } from "../helpers/process.js";

/**
 * Group commit: spends, grants and credits that arrive while a batch is being written are applied
 * together, in arrival order, each with its own outcome. These tests check that batches really form
 * and that everything the ledger promises still holds inside them.
 */

let database: TestDatabase;
let ledger: LedgerService;
const batches: number[] = [];

beforeAll(async () => {
  database = await openTestDatabase();
  ledger = createLedgerService({
    database: database.handle,
    logger: pino({ level: "silent" }),
    writer: { onBatch: (size) => batches.push(size) },
  });
});
afterAll(() => database.close());

/** Every user's balance equals the sum of their entries, and their versions run 1, 2, 3... */
async function checkLedger(userIds: string[]): Promise<void> {
  const rows = await queryRows<{
    user_id: string;
    balance: number;
    version: number;
    total: string;
    versions: number[];
  }>(
    database.handle.db,
    sql`SELECT b.user_id, b.balance, b.version, sum(t.amount)::text AS total,
               array_agg(t.balance_version ORDER BY t.id) AS versions
          FROM token_balances b JOIN token_transactions t USING (user_id)
         WHERE b.user_id IN (${sql.join(
           userIds.map((id) => sql`${id}`),
           sql`, `,
         )}) GROUP BY b.user_id, b.balance, b.version`,
  );
  expect(rows).toHaveLength(userIds.length);
  for (const row of rows) {
    expect(Number(row.total)).toBe(row.balance);
    expect(row.versions).toEqual(Array.from({ length: row.version }, (_, i) => i + 1));
  }
}

describe(`group commit on ${driverName}`, () => {
  it("500 concurrent spends over 20 users with random amounts: acknowledged once, refused absent, balances equal their ledger", async () => {
    const users = Array.from({ length: 20 }, () => newUserId());
    await Promise.all(users.map((userId) => ledger.grant({ userId, amount: 200, reason: "setup" }, "test")));
    batches.length = 0;
    const attempts = Array.from({ length: 500 }, (_, i) => ({
      userId: users[i % users.length] as string,
      amount: 1 + Math.floor(Math.random() * 20),
      key: `k-${i}-${Math.random()}`,
    }));
    const results = await Promise.all(
      attempts.map((a) =>
        ledger.spend(a.userId, { amount: a.amount, description: "race", idempotencyKey: a.key }),
      ),
    );
    const acknowledged = attempts.filter((_, i) => results[i]?.status === "applied");
    const refused = results.filter((r) => r.status !== "applied");
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) expect(r.status).toBe("insufficient");

    const entries = await queryRows<{ idempotency_key: string }>(
      database.handle.db,
      sql`SELECT idempotency_key FROM token_transactions WHERE user_id IN (${sql.join(
        users.map((id) => sql`${id}`),
        sql`, `,
      )}) AND kind = 'SPEND'`,
    );
    const written = entries.map((e) => e.idempotency_key).sort();
    expect(written).toEqual(acknowledged.map((a) => a.key).sort());
    await checkLedger(users);
    // Batches formed: under this load most changes went with others.
    expect(Math.max(...batches)).toBeGreaterThan(1);
    expect(batches.reduce((sum, size) => sum + size, 0)).toBe(500);
  });

  it("a refused spend in the middle of a batch fails alone; one user's spends apply in arrival order", async () => {
    const userId = newUserId();
    await ledger.grant({ userId, amount: 10, reason: "setup" }, "test");
    const sizes: number[] = [];
    const writer = createLedgerWriter(database.handle, {
      maxInFlight: 1,
      onBatch: (size) => sizes.push(size),
    });
    const spend = (amount: number) =>
      writer.apply({ userId, delta: -amount, kind: "SPEND", description: `spend ${amount}` });
    // Submitted in one turn of the event loop, so they are written as one batch.
    const outcomes = await Promise.all([spend(4), spend(7), spend(5), spend(1)]);
    expect(sizes).toEqual([4]);
    expect(outcomes.map((o) => o.status)).toEqual(["applied", "insufficient", "applied", "applied"]);
    expect(outcomes[1]).toEqual({ status: "insufficient", available: 6 });
    const after = outcomes.map((o) => (o.status === "applied" ? o.entry.balanceAfter : null));
    expect(after).toEqual([6, null, 1, 0]);
    await checkLedger([userId]);
  });
});

describe(`live events under batching on ${driverName}`, () => {
  const t = useTestApp();

  it("arrive once each, in version order, for 100 concurrent spends", async () => {
    const userId = newUserId();
    const service = createLedgerService({ database: t.db.handle, logger: pino({ level: "silent" }) });
    await service.grant({ userId, amount: 1000, reason: "setup" }, "test");
    const subscription = new BalanceSubscription(wsClient(t.url, `Bearer ${await t.token(userId)}`));
    try {
      expect(await subscription.next()).toMatchObject({ version: 1 });
      await Promise.all(
        Array.from({ length: 100 }, (_, i) => service.spend(userId, { amount: 1, description: `s${i}` })),
      );
      const versions: number[] = [];
      for (let i = 0; i < 100; i += 1) versions.push((await subscription.next()).version);
      expect(versions).toEqual(Array.from({ length: 100 }, (_, i) => i + 2));
      expect(await subscription.drain()).toEqual([]);
    } finally {
      await subscription.close();
    }
  });
});

describe(`a crash in the middle of batches on ${driverName}`, () => {
  it("SIGKILL under 400 concurrent spends loses no acknowledged spend and applies none twice", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "tl-crash-"));
    const own = serverUrl ? await openTestDatabase() : undefined;
    const server = await startServerProcess({ DATA_DIR: dataDir, DATABASE_URL: own?.url });
    const userId = newUserId();
    const admin = await signDevToken({ secret: JWT_SECRET, userId: "ops", admin: true, expiresIn: "1h" });
    await fetch(`${server.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${admin}` },
      body: JSON.stringify({
        query: `mutation { grantTokens(input: { userId: "${userId}", amount: 1000, reason: "setup" }) { success } }`,
      }),
    });
    const token = await signDevToken({ secret: JWT_SECRET, userId, expiresIn: "1h" });
    let answered = 0;
    const acknowledged: string[] = [];
    await Promise.all(
      Array.from({ length: 400 }, async (_, i) => {
        try {
          const response = await fetch(`${server.url}/api/v1/tokens/spend`, {
            method: "POST",
            headers: {
              authorization: `Bearer ${token}`,
              "content-type": "application/json",
              "idempotency-key": `c${i}`,
            },
            body: JSON.stringify({ amount: 1, description: `spend ${i}` }),
          });
          if (response.status === 200) acknowledged.push(`c${i}`);
        } catch {
          // The connection died with the process: not acknowledged.
        } finally {
          answered += 1;
          if (answered === 60) server.child.kill("SIGKILL");
        }
      }),
    );
    await server.stop();
    expect(acknowledged.length).toBeGreaterThanOrEqual(59);
    const handle = own ? own.handle : await openDatabase({ dataDir });
    try {
      const rows = await queryRows<{ idempotency_key: string }>(
        handle.db,
        sql`SELECT idempotency_key FROM token_transactions WHERE user_id = ${userId} AND kind = 'SPEND'`,
      );
      const keys = rows.map((row) => row.idempotency_key);
      expect(new Set(keys).size).toBe(keys.length);
      for (const key of acknowledged) expect(keys).toContain(key);
      const [balance] = await queryRows<{ balance: number }>(
        handle.db,
        sql`SELECT balance FROM token_balances WHERE user_id = ${userId}`,
      );
      expect(balance?.balance).toBe(1000 - keys.length);
    } finally {
      await (own ? own.close() : handle.close());
    }
  });
});
