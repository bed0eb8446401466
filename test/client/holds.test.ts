import { describe, expect, it } from "vitest";
import { HoldError } from "../../src/client/index.js";
import { driverName } from "../helpers/database.js";
import { countingFetch, disposeClientsAfterEach, makeClient, record, until } from "./helpers/clients.js";
import { useLedgerServer } from "./helpers/ledger-server.js";

// @token-ledger/client's holds against the real server process (issue 19): withHold captures what the
// job reports and releases when it throws; the store shows held and available live.

const server = useLedgerServer();
disposeClientsAfterEach();

describe(`holds in @token-ledger/client on ${driverName}`, () => {
  it("withHold reserves, runs the job, and captures what it reported; the store shows held while it runs", async () => {
    const { token } = await server.fundUser(500);
    const client = makeClient(server, token);
    record(client);
    await until(client, (state) => state.balance === 500 && state.live);
    const outcome = await client.withHold(
      200,
      async (hold) => {
        expect(hold).toMatchObject({ amount: 200, status: "ACTIVE" });
        // While the job runs the tokens are held: arrived live (HOLD) or from the reserve's answer.
        const during = await until(client, (state) => state.held === 200);
        expect(during).toMatchObject({ balance: 500, available: 300 });
        return { used: 137, result: "a picture" };
      },
      { description: "AI generation", ttlSeconds: 120 },
    );
    expect(outcome).toMatchObject({
      result: "a picture",
      used: 137,
      hold: { status: "CAPTURED", captured: 137 },
    });
    expect(outcome.capture.transaction).toMatchObject({ amount: -137, kind: "SPEND", balanceAfter: 363 });
    expect(await until(client, (state) => state.balance === 363 && state.held === 0)).toMatchObject({
      available: 363,
    });
    const after = await until(client, (state) => state.lastChange?.reason === "CAPTURE");
    expect(after.lastChange).toMatchObject({ reason: "CAPTURE", delta: -137 });
  });

  it("a job that throws releases its hold and the error reaches the caller; nothing is spent", async () => {
    const { token } = await server.fundUser(100);
    const counted = countingFetch();
    const client = makeClient(server, token, { fetch: counted.fetch });
    const failure = new Error("the model timed out");
    await expect(
      client.withHold(80, async () => {
        throw failure;
      }),
    ).rejects.toBe(failure);
    expect(counted.operations).toEqual(["ReserveTokens", "ReleaseHold"]);
    expect(await client.getBalance()).toMatchObject({ balance: 100, held: 0, available: 100 });
  });

  it("a refused reserve throws a HoldError before the job runs; reserve/capture/release resolve with errorCodes", async () => {
    const { token } = await server.fundUser(50);
    const client = makeClient(server, token);
    let ran = false;
    const refused = client.withHold(51, async () => {
      ran = true;
      return { used: 1, result: null };
    });
    await expect(refused).rejects.toBeInstanceOf(HoldError);
    await expect(refused).rejects.toMatchObject({ code: "INSUFFICIENT_TOKENS", hold: null });
    expect(ran).toBe(false);

    const reserved = await client.reserve({ amount: 20, idempotencyKey: "job-1" });
    expect(reserved).toMatchObject({ success: true, idempotencyKey: "job-1", hold: { amount: 20 } });
    expect(await client.reserve({ amount: 20, idempotencyKey: "job-1" })).toMatchObject({
      success: true,
      replayed: true,
      hold: { id: reserved.hold?.id },
    });
    const holdId = reserved.hold?.id as string;
    expect(await client.capture(holdId, { amount: 21 })).toMatchObject({
      success: false,
      errorCode: "AMOUNT_EXCEEDS_HOLD",
    });
    expect(await client.release(holdId)).toMatchObject({ success: true, hold: { status: "RELEASED" } });
    expect(await client.capture(holdId, { amount: 1 })).toMatchObject({
      success: false,
      errorCode: "HOLD_RELEASED",
      transaction: null,
    });
  });

  it("when the capture fails after the job ran, a HoldError carries the job's result and the hold stays to expire", async () => {
    const { token } = await server.fundUser(100);
    const client = makeClient(server, token);
    const failed = client.withHold(10, async () => ({ used: 11, result: "done" }));
    await expect(failed).rejects.toMatchObject({
      code: "AMOUNT_EXCEEDS_HOLD",
      result: "done",
      hold: { status: "ACTIVE", amount: 10 },
    });
  });
});
