import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { queryRows } from "../../src/db/client.js";
import { createExpirySweeper } from "../../src/modules/ledger/ledger.sweeper.js";
import { driverName, useTestDatabase } from "../helpers/database.js";
import { expectHoldInvariant, ledgerOf, owner } from "./holds-helpers.js";

// The holds stress test of issue 19: 64 concurrent clients reserve, capture (below, at and above the
// hold), release, or leave a hold to expire, against a few users, through two ledger instances (two
// group commits, so batches also run concurrently), for HOLDS_STRESS_SECONDS (20 by default). Then
// the sweeper runs: every hold must be captured, released or expired, every capture must have its one
// SPEND entry, and each user keeps balance = Σ lots' remaining + Σ active pins = Σ entries with
// 0 <= held <= balance. PostgreSQL only: PGlite runs one query at a time, so there is no concurrency
// to stress.

const database = useTestDatabase();
const SECONDS = Number(process.env.HOLDS_STRESS_SECONDS ?? 20);
const CLIENTS = 64;
const USERS = 4;

describe.skipIf(driverName === "pglite")(`holds under 64 concurrent clients on ${driverName}`, () => {
  it(
    `reserve, capture and release for ${SECONDS} s: every hold ends captured, released or expired; the invariants hold`,
    async () => {
      const db = database.current();
      const ledgers = [ledgerOf(db), ledgerOf(db)];
      const run = randomUUID();
      const users = Array.from({ length: USERS }, (_, n) => `${run}-u${n}`);
      for (const u of users) await ledgers[0]?.grant({ userId: u, amount: 5_000, reason: "stress" }, "test");
      const counts = {
        reserved: 0,
        insufficient: 0,
        tooMany: 0,
        captured: 0,
        released: 0,
        left: 0,
        refused: 0,
      };
      const deadline = Date.now() + SECONDS * 1000;
      const client = async (n: number) => {
        const ledger = ledgers[n % 2] ?? ledgerOf(db);
        let i = 0;
        while (Date.now() < deadline) {
          i += 1;
          const u = users[(n + i) % USERS] as string;
          const amount = 1 + ((n * 7 + i * 13) % 40);
          if (i % 25 === 0) await ledger.grant({ userId: u, amount: 400, reason: "top-up" }, "test");
          const reserved = await ledger.reserve(u, { amount, ttlSeconds: 1, idempotencyKey: randomUUID() });
          if (reserved.status !== "reserved") {
            if (reserved.status === "insufficient") counts.insufficient += 1;
            else counts.tooMany += 1;
            continue;
          }
          counts.reserved += 1;
          const choice = (n + i) % 5;
          if (choice === 4) {
            counts.left += 1; // the job died: the TTL ends it
            continue;
          }
          const id = reserved.hold.id;
          const result =
            choice === 3
              ? await ledger.release(id, owner(u))
              : await ledger.capture(
                  id,
                  {
                    amount: choice === 2 ? amount + 5 : amount - (i % amount),
                    overage: choice === 2 ? "CAP" : "REJECT",
                  },
                  owner(u),
                );
          if (result.status === "captured") counts.captured += 1;
          else if (result.status === "released") counts.released += 1;
          else counts.refused += 1; // expired under load before its capture: HOLD_EXPIRED
          // The same capture again replays; it never spends twice.
          if (result.status === "captured" && i % 10 === 0) {
            const again = await ledger.capture(
              id,
              { amount: -result.entry.amount + result.shortfall },
              owner(u),
            );
            expect(again).toMatchObject({ status: "captured", replayed: true });
          }
        }
      };
      await Promise.all(Array.from({ length: CLIENTS }, (_, n) => client(n)));
      // Past every TTL, one sweep ends what was left.
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      const sweeper = createExpirySweeper({
        database: db.handle,
        ledger: ledgers[0] as NonNullable<(typeof ledgers)[0]>,
        intervalMs: 0,
        logger: pino({ level: "silent" }),
      });
      await sweeper.runOnce();
      const [row] = await queryRows<Record<string, unknown>>(
        db.handle.db,
        sql`SELECT count(*) FILTER (WHERE h.status = 'active') AS active,
                   count(*) FILTER (WHERE h.status = 'captured') AS captured,
                   count(*) AS holds,
                   (SELECT count(*) FROM token_transactions t
                     WHERE t.kind = 'SPEND' AND t.user_id LIKE ${`${run}-%`} AND t.external_ref LIKE 'hold:%') AS captures
              FROM token_holds h WHERE h.user_id LIKE ${`${run}-%`}`,
      );
      expect(Number(row?.active)).toBe(0);
      expect(Number(row?.holds)).toBe(counts.reserved);
      expect(Number(row?.captured)).toBe(counts.captured);
      expect(Number(row?.captures)).toBe(counts.captured);
      for (const u of users) expect((await expectHoldInvariant(db.handle.db, u)).held).toBe(0);
      console.info(`holds stress, ${SECONDS} s, ${CLIENTS} clients:`, JSON.stringify(counts));
      expect(counts.reserved).toBeGreaterThan(CLIENTS);
    },
    (SECONDS + 60) * 1000,
  );
});
