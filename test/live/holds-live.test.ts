import { afterAll, describe, expect, it } from "vitest";
import { useTestApp } from "../helpers/app.js";
import { driverName } from "../helpers/database.js";
import { fundUser, SPEND } from "../helpers/ledger.js";
import { BalanceSubscription, wsClient } from "../helpers/live.js";

// A hold's reserve, capture, release and expiry each arrive as one balanceChanged event with its
// reason, held and available, through a real graphql-ws client (issue 19).

const t = useTestApp();
const open: BalanceSubscription[] = [];
afterAll(async () => {
  await Promise.all(open.map((subscription) => subscription.close().catch(() => undefined)));
});

const QUERY = `subscription { balanceChanged {
  balance held available delta reason holdId version lastUpdated transaction { id amount kind balanceAfter } } }`;

const RESERVE = `mutation R($input: ReserveTokensInput!) { reserveTokens(input: $input) { success errorCode hold { id } } }`;
const CAPTURE = `mutation C($input: CaptureHoldInput!) { captureHold(input: $input) { success errorCode } }`;
const RELEASE = `mutation L($input: ReleaseHoldInput!) { releaseHold(input: $input) { success errorCode } }`;

async function reserve(token: string, amount: number, key: string, ttlSeconds?: number): Promise<string> {
  const result = await t.gql<{ reserveTokens: { success: boolean; hold: { id: string } } }>(
    RESERVE,
    { input: { amount, idempotencyKey: key, ttlSeconds } },
    token,
  );
  expect(result.data?.reserveTokens.success).toBe(true);
  return result.data?.reserveTokens.hold.id as string;
}

describe(`hold changes on balanceChanged on ${driverName}`, () => {
  it("a reserve (HOLD), a capture (CAPTURE, its SPEND entry) and a release (RELEASE), each with held and available", async () => {
    const { token } = await fundUser(t, 500);
    const subscription = new BalanceSubscription(wsClient(t.url, `Bearer ${token}`), QUERY);
    open.push(subscription);
    expect(await subscription.next()).toMatchObject({
      reason: "SNAPSHOT",
      balance: 500,
      held: 0,
      version: 1,
    });

    const first = await reserve(token, 100, "gen-1");
    expect(await subscription.next()).toMatchObject({
      reason: "HOLD",
      holdId: first,
      balance: 500,
      held: 100,
      available: 400,
      delta: 0,
      version: 2,
      transaction: null,
    });

    const captured = await t.gql(CAPTURE, { input: { holdId: first, amount: 60 } }, token);
    expect(captured.data).toEqual({ captureHold: { success: true, errorCode: null } });
    expect(await subscription.next()).toMatchObject({
      reason: "CAPTURE",
      holdId: first,
      balance: 440,
      held: 0,
      available: 440,
      delta: -60,
      version: 3,
      transaction: { amount: -60, kind: "SPEND", balanceAfter: 440 },
    });

    const second = await reserve(token, 40, "gen-2");
    expect(await subscription.next()).toMatchObject({ reason: "HOLD", held: 40, available: 400, version: 4 });
    await t.gql(RELEASE, { input: { holdId: second } }, token);
    expect(await subscription.next()).toMatchObject({
      reason: "RELEASE",
      holdId: second,
      balance: 440,
      held: 0,
      available: 440,
      delta: 0,
      version: 5,
      transaction: null,
    });
    expect(await subscription.drain()).toEqual([]);
  });

  it("a hold past its TTL comes back as HOLD_EXPIRED when the user's next change touches it", async () => {
    const { token } = await fundUser(t, 100);
    const subscription = new BalanceSubscription(wsClient(t.url, `Bearer ${token}`), QUERY);
    open.push(subscription);
    await subscription.next();
    const holdId = await reserve(token, 30, "short", 1);
    expect(await subscription.next()).toMatchObject({ reason: "HOLD", held: 30, available: 70 });
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    const spent = await t.gql(
      SPEND,
      { input: { amount: 90, description: "needs the held tokens back" } },
      token,
    );
    expect(spent.data).toMatchObject({ spendTokens: { success: true, newBalance: 10 } });
    // The sweeper (or this spend's touch) expires it first, then the spend draws on what came back.
    const events = [await subscription.next(), await subscription.next()];
    expect(events.map((event) => event.reason)).toEqual(["HOLD_EXPIRED", "SPEND"]);
    expect(events[0]).toMatchObject({ holdId, balance: 100, held: 0, available: 100, delta: 0 });
    expect(events[1]).toMatchObject({ balance: 10, held: 0, available: 10, delta: -90 });
  });
});
