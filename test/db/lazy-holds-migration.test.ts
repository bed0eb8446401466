import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { readMigrationFiles } from "drizzle-orm/migrator";
import { afterAll, describe, expect, it } from "vitest";
import type { DatabaseHandle } from "../../src/db/database.js";
import { migrate } from "../../src/db/migrate.js";
import { driverName, openTestDatabase, type TestDatabase } from "../helpers/database.js";
import { expectHoldInvariant, ledgerOf, owner, pinsOf } from "../ledger/holds-helpers.js";
import { applyAt, grant, lotsOf, period } from "../ledger/lots-helpers.js";

// Migration 0020 (holds leave their tokens in the lots) on a database that has active holds made
// under 0019, whose tokens were all pinned at their reserve: their pins stay and count in the new
// `pinned` columns, so a capture, a spend and a release after the upgrade take the right tokens.

const FOLDER = fileURLToPath(new URL("../../drizzle", import.meta.url));
const opened: TestDatabase[] = [];
afterAll(async () => {
  await Promise.all(opened.map((db) => db.close()));
});

/** Applies drizzle/'s migrations 0000..`last` as the migrator does, with its bookkeeping. */
async function migrateUpTo(handle: DatabaseHandle, last: number): Promise<void> {
  await handle.query("CREATE SCHEMA IF NOT EXISTS drizzle", []);
  await handle.query(
    "CREATE TABLE IF NOT EXISTS drizzle.__drizzle_migrations (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint)",
    [],
  );
  for (const migration of readMigrationFiles({ migrationsFolder: FOLDER }).slice(0, last + 1)) {
    for (const statement of migration.sql) await handle.query(statement, []);
    await handle.query("INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES ($1, $2)", [
      migration.hash,
      migration.folderMillis,
    ]);
  }
}

describe(`migration 0020 on ${driverName}`, () => {
  it("keeps the pins of holds made before it and counts them in pinned: a capture, a spend and a release after it take the right tokens", async () => {
    const db = await openTestDatabase({ migrated: false });
    opened.push(db);
    await migrateUpTo(db.handle, 19);
    const u = `mig-${randomUUID()}`;
    const T0 = new Date("2032-03-01T00:00:00.000Z");
    const later = new Date("2032-04-01T00:00:00.000Z");
    await applyAt(db, [grant(u, 100), period(u, 50, `${u}:p`, T0, later)], T0);
    const ledger = ledgerOf(db);
    const a = await ledger.reserve(u, { amount: 60, ttlSeconds: 86_400, idempotencyKey: `${u}:a` });
    const b = await ledger.reserve(u, { amount: 20, ttlSeconds: 86_400, idempotencyKey: `${u}:b` });
    if (a.status !== "reserved" || b.status !== "reserved") throw new Error("not reserved");
    // Under 0019: the period's 50 and 10 of the grant pinned to a, 20 of the grant to b.
    expect((await lotsOf(db, u)).map((lot) => [lot.source, lot.remaining])).toEqual([
      ["grant", 70],
      ["period", 0],
    ]);

    expect(await migrate(db.handle)).toBe(1);
    expect(await expectHoldInvariant(db.handle.db, u)).toEqual({ balance: 150, held: 80 });
    expect((await pinsOf(db.handle.db, a.hold.id)).map((pin) => pin.amount)).toEqual([10, 50]);

    // a uses 30 of its pins (the period's first) and gives 20 back to the period and 10 to the grant.
    expect(await ledger.capture(a.hold.id, { amount: 30 }, owner(u))).toMatchObject({ status: "captured" });
    expect((await lotsOf(db, u)).map((lot) => [lot.source, lot.remaining])).toEqual([
      ["grant", 80],
      ["period", 20],
    ]);
    // b's tokens are all pinned: a spend draws from the front of the lots.
    expect(await ledger.spend(u, { amount: 5, description: "after the upgrade" })).toMatchObject({
      status: "applied",
      entry: { balanceAfter: 115 },
    });
    expect((await lotsOf(db, u)).map((lot) => [lot.source, lot.remaining])).toEqual([
      ["grant", 80],
      ["period", 15],
    ]);
    expect(await ledger.release(b.hold.id, owner(u))).toMatchObject({ status: "released" });
    expect((await lotsOf(db, u)).map((lot) => [lot.source, lot.remaining])).toEqual([
      ["grant", 100],
      ["period", 15],
    ]);
    expect(await expectHoldInvariant(db.handle.db, u)).toEqual({ balance: 115, held: 0 });
  });
});
