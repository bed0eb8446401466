import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  APPLY_STATEMENT,
  type ChangeOutcome,
  type ChangeRequest,
  decodeOutcomes,
  encodeRequests,
  type OutcomeRow,
} from "../../src/modules/ledger/ledger.statements.js";
import { driverName, useTestDatabase } from "../helpers/database.js";

// ledger_apply alone (src/modules/ledger/sql/ledger_apply.sql): one row per rule. Each row is one
// batch, for users of its own (u, v), with a balance limit of 1,000; the outcomes come back in
// request order.

const database = useTestDatabase();
const MAX = 1000;

async function apply(requests: readonly ChangeRequest[]): Promise<ChangeOutcome[]> {
  const rows = await database
    .current()
    .handle.query<OutcomeRow>(APPLY_STATEMENT, [encodeRequests(requests), MAX]);
  return decodeOutcomes(rows, requests.length);
}

type Users = { u: string; v: string; key: string };
const change = (
  userId: string,
  delta: number,
  kind: ChangeRequest["kind"],
  more: Partial<ChangeRequest> = {},
) => ({ userId, delta, kind, description: null, ...more }) as ChangeRequest;
const credit = (userId: string, amount: number) => change(userId, amount, "GRANT");
const spend = (userId: string, amount: number, more: Partial<ChangeRequest> = {}) =>
  change(userId, -amount, "SPEND", more);
const purchase = (userId: string, amount: number, ref: string) =>
  change(userId, amount, "PURCHASE", { externalRef: ref });
const refundWhatIsLeft = (userId: string, amount: number, ref: string) =>
  change(userId, -amount, "REFUND", { mode: "what_is_left", externalRef: ref, metadata: { by: "test" } });
const limited = (key: string, points: number) => ({ rateLimit: { key, points, windowMs: 60_000 } });

const applied = (amount: number, balanceAfter: number) => ({
  status: "applied",
  entry: { amount, balanceAfter },
});

const rows: [string, (x: Users) => ChangeRequest[], (x: Users) => unknown[]][] = [
  ["a credit creates the balance", ({ u }) => [credit(u, 100)], () => [applied(100, 100)]],
  [
    "changes to one user apply in order against a running balance, each one version up",
    ({ u }) => [credit(u, 5), credit(u, 6), spend(u, 2)],
    () => [
      { status: "applied", entry: { balanceAfter: 5, balanceVersion: 1 } },
      { status: "applied", entry: { balanceAfter: 11, balanceVersion: 2 } },
      { status: "applied", entry: { balanceAfter: 9, balanceVersion: 3, amount: -2 } },
    ],
  ],
  [
    "a spend past the balance is insufficient, with what is available",
    ({ u }) => [credit(u, 10), spend(u, 4), spend(u, 7)],
    () => [applied(10, 10), applied(-4, 6), { status: "insufficient", available: 6 }],
  ],
  [
    "a spend with no balance at all is insufficient, 0 available",
    ({ u }) => [spend(u, 1)],
    () => [{ status: "insufficient", available: 0 }],
  ],
  [
    "a credit past the limit is refused whole, with the balance",
    ({ u }) => [credit(u, 900), credit(u, 101), credit(u, 100)],
    () => [applied(900, 900), { status: "limit", available: 900 }, applied(100, MAX)],
  ],
  [
    "a refusal fails alone: its neighbours apply",
    ({ u, v }) => [credit(u, 5), spend(v, 1), credit(v, 3), spend(u, 5)],
    () => [applied(5, 5), { status: "insufficient", available: 0 }, applied(3, 3), applied(-5, 0)],
  ],
  [
    "a refund takes what is left, and records recovered and shortfall",
    ({ u, key }) => [purchase(u, 100, key), spend(u, 70), refundWhatIsLeft(u, 100, key)],
    () => [
      applied(100, 100),
      applied(-70, 30),
      {
        status: "applied",
        entry: { amount: -30, balanceAfter: 0, metadata: { by: "test", recovered: 30, shortfall: 70 } },
      },
    ],
  ],
  [
    "a refund after everything was spent writes an entry of 0",
    ({ u, key }) => [purchase(u, 50, key), spend(u, 50), refundWhatIsLeft(u, 50, key)],
    () => [
      applied(50, 50),
      applied(-50, 0),
      { status: "applied", entry: { amount: 0, metadata: { recovered: 0, shortfall: 50 } } },
    ],
  ],
  [
    "an idempotency key used twice in one batch: the second is a replay, with the first's hash and the balance now",
    ({ u, key }) => [
      credit(u, 10),
      spend(u, 3, { idempotencyKey: key, requestHash: "h1" }),
      spend(u, 3, { idempotencyKey: key, requestHash: "h2" }),
    ],
    () => [
      applied(10, 10),
      applied(-3, 7),
      { status: "replay", requestHash: "h1", available: 7, entry: { amount: -3 } },
    ],
  ],
  [
    "idempotency keys are per kind: a grant's key does not replay a spend",
    ({ u, key }) => [change(u, 10, "GRANT", { idempotencyKey: key }), spend(u, 2, { idempotencyKey: key })],
    () => [applied(10, 10), applied(-2, 8)],
  ],
  [
    "an external reference credits once per kind: the second is a duplicate carrying the first entry",
    ({ u, v, key }) => [purchase(u, 100, key), purchase(v, 100, key)],
    ({ u }) => [applied(100, 100), { status: "duplicate", entry: { userId: u, amount: 100 } }],
  ],
  [
    "a debit's external reference is used once: a second debit with it in the same batch is a duplicate",
    ({ u, v, key }) => [
      credit(u, 10),
      credit(v, 10),
      spend(u, 2, { externalRef: key }),
      spend(v, 3, { externalRef: key }),
    ],
    ({ u }) => [
      applied(10, 10),
      applied(10, 10),
      applied(-2, 8),
      { status: "duplicate", entry: { userId: u, amount: -2 } },
    ],
  ],
  [
    "three spends of one counter in one batch with a limit of 2: the third is rate limited",
    ({ u, key }) => [
      credit(u, 10),
      spend(u, 1, limited(key, 2)),
      spend(u, 1, limited(key, 2)),
      spend(u, 1, limited(key, 2)),
    ],
    () => [applied(10, 10), applied(-1, 9), applied(-1, 8), { status: "rate_limited", available: 8 }],
  ],
  [
    "a refused request still counts against its counter",
    ({ u, key }) => [
      spend(u, 5, limited(key, 2)),
      credit(u, 10),
      spend(u, 1, limited(key, 2)),
      spend(u, 1, limited(key, 2)),
    ],
    () => [
      { status: "insufficient", available: 0 },
      applied(10, 10),
      applied(-1, 9),
      { status: "rate_limited", available: 9 },
    ],
  ],
];

describe(`ledger_apply on ${driverName}`, () => {
  it.each(rows)("%s", async (_name, requests, expected) => {
    const users = { u: randomUUID(), v: randomUUID(), key: randomUUID() };
    expect(await apply(requests(users))).toMatchObject(expected(users));
  });

  it("a counter carries over to the next batch within its window, and says when to retry", async () => {
    const u = randomUUID();
    const key = randomUUID();
    await apply([credit(u, 10), spend(u, 1, limited(key, 2))]);
    const [second, third] = await apply([spend(u, 1, limited(key, 2)), spend(u, 1, limited(key, 2))]);
    expect(second).toMatchObject({ status: "applied" });
    expect(third).toMatchObject({ status: "rate_limited", available: 8 });
    const retryAfterMs = (third as { retryAfterMs: number }).retryAfterMs;
    expect(retryAfterMs).toBeGreaterThan(0);
    expect(retryAfterMs).toBeLessThanOrEqual(60_000);
  });

  it("a replay across batches answers the balance now, not the one after the first write", async () => {
    const u = randomUUID();
    const key = randomUUID();
    await apply([credit(u, 10), spend(u, 3, { idempotencyKey: key, requestHash: "h" })]);
    await apply([credit(u, 5)]);
    const [replay] = await apply([spend(u, 3, { idempotencyKey: key, requestHash: "h" })]);
    expect(replay).toMatchObject({ status: "replay", available: 12, entry: { balanceAfter: 7 } });
  });
});
