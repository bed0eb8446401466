import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLedgerService } from "../../src/modules/ledger/ledger.service.js";
import { newUserId } from "../helpers/app.js";
import { driverName } from "../helpers/database.js";
import { BalanceSubscription, wsClient } from "../helpers/live.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { ledgerOf } from "../ledger/holds-helpers.js";
import { applyAt, grant, pack, period, spend } from "../ledger/lots-helpers.js";

// What the app and operators see of tokens that expire (issue 18): the balance's expiring list and
// next expiry (GraphQL, REST, live events), a lot past its end never counted even before its EXPIRE
// entry is written (design row 32), the EXPIRE event, and an operator's list of a user's lots. The
// lots are written by the money function itself, through ledger-level credits that carry an end.

const EVENT = `subscription {
  balanceChanged {
    balance held available delta reason version
    expiring { amount expiresAt sources } nextExpiry { amount expiresAt sources }
  }
}`;
const BALANCE = `{ balance { balance held available version
  expiring { amount expiresAt sources } nextExpiry { amount expiresAt sources } } }`;

let t: TestServer;
const open: BalanceSubscription[] = [];

beforeAll(async () => {
  // No sweeper: a due lot stays unswept until the test expires it, so the moment between is certain.
  t = await startTestServer({ EXPIRY_SWEEP_INTERVAL_MS: "0" });
});
afterAll(async () => {
  await Promise.all(open.map((subscription) => subscription.close().catch(() => undefined)));
  await t.close();
});

async function subscribe(userId: string): Promise<BalanceSubscription> {
  const subscription = new BalanceSubscription(wsClient(t.url, `Bearer ${await t.token(userId)}`), EVENT);
  open.push(subscription);
  return subscription;
}

async function balanceOf(userId: string) {
  const { data, errors } = await t.gql<{ balance: Record<string, unknown> }>(
    BALANCE,
    {},
    await t.token(userId),
  );
  expect(errors).toBeUndefined();
  return data?.balance;
}

async function restBalance(userId: string) {
  const response = await fetch(`${t.url}/api/v1/tokens/balance`, {
    headers: { authorization: `Bearer ${await t.token(userId)}` },
  });
  expect(response.status).toBe(200);
  return (await response.json()) as Record<string, unknown>;
}

const later = (ms: number) => new Date(Date.now() + ms);
const iso = (date: Date) => date.toISOString();
const sleepUntil = (date: Date) =>
  new Promise((resolve) => setTimeout(resolve, date.getTime() - Date.now() + 50));

describe(`expiring tokens as the app sees them, on ${driverName}`, () => {
  it("lists what expires soonest first, one entry per instant, in GraphQL, REST and live events", async () => {
    const u = newUserId();
    const soon = later(3_600_000);
    const after = later(7_200_000);
    const subscription = await subscribe(u);
    expect(await subscription.next()).toMatchObject({ reason: "SNAPSHOT", expiring: [], nextExpiry: null });

    const chain = { chain: `${u}:pro` };
    await applyAt(t.db, [
      period(u, 200, `${u}:p1`, new Date(), soon, chain),
      { ...grant(u, 100), lot: { source: "grant", expiresAt: soon } },
      period(u, 300, `${u}:p2`, new Date(), after, chain),
      pack(u, 50, `${u}:pack`),
    ]);
    const first = { amount: 300, expiresAt: iso(soon), sources: ["GRANT", "PERIOD"] };
    const second = { amount: 300, expiresAt: iso(after), sources: ["PERIOD"] };
    const events = [await subscription.next(), await subscription.next(), await subscription.next()];
    const last = await subscription.next();
    expect(events.map((event) => event.reason)).toEqual(["PURCHASE", "GRANT", "PURCHASE"]);
    // One read of the lots per notification: the batch's events all carry the list as committed.
    expect(last).toMatchObject({ balance: 650, held: 0, available: 650, reason: "PURCHASE" });
    expect(last.expiring).toEqual([first, second]);
    expect(last.nextExpiry).toEqual(first);

    expect(await balanceOf(u)).toMatchObject({
      balance: 650,
      held: 0,
      available: 650,
      version: 4,
      expiring: [first, second],
      nextExpiry: first,
    });
    const restFirst = { amount: 300, expires_at: iso(soon), sources: ["grant", "period"] };
    const restSecond = { amount: 300, expires_at: iso(after), sources: ["period"] };
    expect(await restBalance(u)).toMatchObject({
      balance: 650,
      held: 0,
      available: 650,
      next_expiry: restFirst,
      expiring: [restFirst, restSecond],
    });

    // A spend takes the soonest-expiring tokens first (at one instant, the oldest lot first: the
    // period's 200, then 50 of the grant's 100), and the event says so.
    await applyAt(t.db, [spend(u, 250)]);
    expect(await subscription.next()).toMatchObject({
      balance: 400,
      delta: -250,
      reason: "SPEND",
      expiring: [{ amount: 50, expiresAt: iso(soon), sources: ["GRANT"] }, second],
    });
  });

  it("row 32: a lot past its end is never counted, before and after its EXPIRE entry; the EXPIRE arrives live", async () => {
    const u = newUserId();
    const end = later(1_500);
    await applyAt(t.db, [
      period(u, 200, `${u}:p1`, new Date(), end, { chain: `${u}:pro` }),
      pack(u, 100, `${u}:pk`),
    ]);
    const subscription = await subscribe(u);
    expect(await subscription.next()).toMatchObject({
      balance: 300,
      version: 2,
      nextExpiry: { amount: 200, expiresAt: iso(end), sources: ["PERIOD"] },
    });

    await sleepUntil(end);
    // Due, not yet expired by any write: the stored balance still says 300; every read says 100.
    expect(await balanceOf(u)).toMatchObject({
      balance: 100,
      available: 100,
      version: 2,
      expiring: [],
      nextExpiry: null,
    });
    expect(await restBalance(u)).toMatchObject({
      balance: 100,
      available: 100,
      next_expiry: null,
      expiring: [],
    });
    expect(await subscription.drain(100)).toEqual([]);

    // What the sweeper does: the ledger service's expireDue, through the group commit.
    const ledger = createLedgerService({ database: t.db.handle, logger: pino({ level: "silent" }) });
    expect(await ledger.expireDue([u])).toMatchObject([{ userId: u, expired: 200 }]);
    expect(await subscription.next()).toMatchObject({
      balance: 100,
      delta: -200,
      version: 3,
      reason: "EXPIRE",
      expiring: [],
      nextExpiry: null,
    });
    expect(await balanceOf(u)).toMatchObject({ balance: 100, version: 3 });
  });

  it("row 32 with a hold: held tokens of a lot past its end stay counted and are never listed as expiring; its free ones go", async () => {
    const u = newUserId();
    const end = later(1_500);
    await applyAt(t.db, [
      period(u, 200, `${u}:p1`, new Date(), end, { chain: `${u}:pro` }),
      pack(u, 100, `${u}:pk`),
    ]);
    // The hold keeps the soonest-expiring tokens: 50 of the period's, which outlive it while it lasts.
    const hold = await ledgerOf(t.db).reserve(u, { amount: 50, ttlSeconds: 600, idempotencyKey: `${u}:h` });
    expect(hold.status).toBe("reserved");
    expect(await balanceOf(u)).toMatchObject({
      balance: 300,
      held: 50,
      available: 250,
      expiring: [{ amount: 150, expiresAt: iso(end), sources: ["PERIOD"] }],
    });

    await sleepUntil(end);
    // Due, not yet expired: the period's 150 free tokens are gone from every read, its 50 held stay.
    expect(await balanceOf(u)).toMatchObject({ balance: 150, held: 50, available: 100, expiring: [] });
    expect(await restBalance(u)).toMatchObject({ balance: 150, available: 100, expiring: [] });
    const ledger = createLedgerService({ database: t.db.handle, logger: pino({ level: "silent" }) });
    expect(await ledger.expireDue([u])).toMatchObject([{ userId: u, expired: 150 }]);
    expect(await balanceOf(u)).toMatchObject({ balance: 150, held: 50, available: 100 });
  });

  it("lists at most 10 expiry instants", async () => {
    const u = newUserId();
    const ends = Array.from({ length: 12 }, (_, i) => later((i + 1) * 3_600_000));
    await applyAt(
      t.db,
      ends.map((end, i) => period(u, i + 1, `${u}:p${i}`, new Date(), end, { chain: `${u}:c${i}` })),
    );
    const balance = await balanceOf(u);
    expect(balance?.balance).toBe(78);
    expect(((balance?.expiring ?? []) as { amount: number }[]).map((tokens) => tokens.amount)).toEqual([
      1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
    ]);
  });
});

describe(`userLots: an operator's view of a user's lots, on ${driverName}`, () => {
  const LOTS = `query L($userId: ID!, $includeEmpty: Boolean) { userLots(userId: $userId, includeEmpty: $includeEmpty) {
    source sourceRef productId granted remaining expired expiresAt entryId } }`;

  it("lists lots with tokens left in draw order, then, when asked, the empty ones; users are refused", async () => {
    const u = newUserId();
    const soon = later(3_600_000);
    await applyAt(t.db, [
      pack(u, 50, `${u}:pk`),
      period(u, 200, `${u}:p1`, new Date(), soon, { chain: `${u}:pro` }),
    ]);
    await applyAt(t.db, [spend(u, 200)]);
    const admin = await t.token("ops", { admin: true });
    const live = await t.gql<{ userLots: Record<string, unknown>[] }>(LOTS, { userId: u }, admin);
    expect(live.errors).toBeUndefined();
    expect(live.data?.userLots).toEqual([
      {
        source: "PACK",
        sourceRef: `${u}:pk`,
        productId: null,
        granted: 50,
        remaining: 50,
        expired: 0,
        expiresAt: null,
        entryId: expect.any(String),
      },
    ]);
    const all = await t.gql<{ userLots: { source: string; remaining: number; expiresAt: string | null }[] }>(
      LOTS,
      { userId: u, includeEmpty: true },
      admin,
    );
    expect(all.data?.userLots.map((lot) => [lot.source, lot.remaining, lot.expiresAt])).toEqual([
      ["PACK", 50, null],
      ["PERIOD", 0, iso(soon)],
    ]);
    const refused = await t.gql(LOTS, { userId: u }, await t.token(u));
    expect(refused.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
  });
});
