import { describe, expect, it } from "vitest";
import { listEntries } from "../../src/modules/ledger/ledger.queries.js";
import { newUserId, useTestApp } from "../helpers/app.js";
import { driverName } from "../helpers/database.js";
import { balanceOf, fundUser } from "../helpers/ledger.js";

const t = useTestApp();

const ADJUST = `mutation A($input: AdjustTokensInput!) {
  adjustTokens(input: $input) {
    success newBalance message errorCode
    transaction { amount balanceAfter kind description metadata }
    balance { id balance }
  }
}`;
const TRANSFER = `mutation T($input: TransferTokensInput!) {
  transferTokens(input: $input) {
    success message errorCode
    debit { amount balanceAfter kind metadata }
    credit { amount balanceAfter kind metadata }
    from { balance } to { balance }
  }
}`;

interface Adjusted {
  adjustTokens: {
    success: boolean;
    newBalance: number;
    errorCode: string | null;
    transaction: { amount: number; kind: string; metadata: Record<string, unknown> } | null;
  };
}
interface Transferred {
  transferTokens: {
    success: boolean;
    errorCode: string | null;
    debit: { amount: number; balanceAfter: number } | null;
    credit: { amount: number; balanceAfter: number } | null;
    from: { balance: number };
    to: { balance: number };
  };
}

const db = () => t.db.handle.db;
const admin = () => t.token("ops-1", { admin: true });

async function rest(path: string, body: unknown, token: string, key?: string) {
  const response = await fetch(`${t.url}${path}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${token}`,
      ...(key ? { "idempotency-key": key } : {}),
    },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe(`adjustTokens on ${driverName}`, () => {
  it("takes tokens back with a reason, recorded with the operator who did it", async () => {
    const { userId } = await fundUser(t, 2_000);
    const input = { userId, amount: -1_500, reason: "mistaken grant in ticket 42" };
    const result = await t.gql<Adjusted>(ADJUST, { input }, await admin());
    expect(result.data?.adjustTokens).toMatchObject({
      success: true,
      newBalance: 500,
      errorCode: null,
      transaction: {
        amount: -1_500,
        kind: "ADJUSTMENT",
        description: "mistaken grant in ticket 42",
        metadata: { adjustedBy: "ops-1" },
      },
    });
    expect(await balanceOf(db(), userId)).toBe(500);
    expect(t.logs.messages()).toContain(
      `Admin ops-1 adjusted user ${userId}'s tokens by -1500. New balance: 500`,
    );
  });

  it("refuses a debit below zero whole, with what is available, and writes nothing", async () => {
    const { userId } = await fundUser(t, 30);
    const result = await t.gql<Adjusted>(
      ADJUST,
      { input: { userId, amount: -31, reason: "x" } },
      await admin(),
    );
    expect(result.data?.adjustTokens).toMatchObject({
      success: false,
      newBalance: 30,
      errorCode: "INSUFFICIENT_TOKENS",
      transaction: null,
    });
    expect(await balanceOf(db(), userId)).toBe(30);
    expect(await listEntries(db(), userId, { limit: 10 })).toHaveLength(1);
  });

  it("credits up to the cap and refuses past it", async () => {
    const userId = newUserId();
    const ok = await t.gql<Adjusted>(
      ADJUST,
      { input: { userId, amount: 7, reason: "goodwill" } },
      await admin(),
    );
    expect(ok.data?.adjustTokens).toMatchObject({ success: true, newBalance: 7 });
    const over = { userId, amount: 2_000_000_000, reason: "too much" };
    const refused = await t.gql<Adjusted>(ADJUST, { input: over }, await admin());
    expect(refused.data?.adjustTokens).toMatchObject({ success: false, errorCode: "BALANCE_LIMIT_EXCEEDED" });
    expect(await balanceOf(db(), userId)).toBe(7);
  });

  it("refuses 0, a missing reason and non-admins; changes nothing", async () => {
    const { userId, token } = await fundUser(t, 10);
    const zero = await t.gql(ADJUST, { input: { userId, amount: 0, reason: "x" } }, await admin());
    expect(zero.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    expect(zero.errors?.[0]?.message).toContain("amount must not be 0");
    const blank = await t.gql(ADJUST, { input: { userId, amount: -1, reason: "  " } }, await admin());
    expect(blank.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    const user = await t.gql(ADJUST, { input: { userId, amount: -10, reason: "mine" } }, token);
    expect(user.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    expect(await balanceOf(db(), userId)).toBe(10);
  });

  it("a retried key adjusts once; the same key for another amount is refused", async () => {
    const { userId } = await fundUser(t, 100);
    const input = { userId, amount: -40, reason: "chargeback", idempotencyKey: "adj-1" };
    const answers = await Promise.all(
      Array.from({ length: 6 }, async () => t.gql<Adjusted>(ADJUST, { input }, await admin())),
    );
    expect(answers.map((a) => a.data?.adjustTokens.newBalance)).toEqual(Array(6).fill(60));
    expect(await balanceOf(db(), userId)).toBe(60);
    const other = await t.gql<Adjusted>(ADJUST, { input: { ...input, amount: -41 } }, await admin());
    expect(other.data?.adjustTokens).toMatchObject({ success: false, errorCode: "IDEMPOTENCY_KEY_REUSED" });
  });

  it("concurrent debits never take a balance below zero", async () => {
    const { userId } = await fundUser(t, 100);
    const answers = await Promise.all(
      Array.from({ length: 10 }, async () =>
        t.gql<Adjusted>(ADJUST, { input: { userId, amount: -15, reason: "race" } }, await admin()),
      ),
    );
    const succeeded = answers.filter((a) => a.data?.adjustTokens.success).length;
    expect(succeeded).toBe(6);
    expect(await balanceOf(db(), userId)).toBe(10);
  });

  it("REST: POST /api/v1/tokens/admin/adjust, 403 for a user, 409 below zero", async () => {
    const { userId, token } = await fundUser(t, 50);
    const path = "/api/v1/tokens/admin/adjust";
    expect((await rest(path, { user_id: userId, amount: -5, reason: "x" }, token)).status).toBe(403);
    const refused = await rest(path, { user_id: userId, amount: -51, reason: "x" }, await admin());
    expect(refused).toMatchObject({
      status: 409,
      body: { success: false, error_code: "INSUFFICIENT_TOKENS" },
    });
    const bad = await rest(path, { user_id: userId, amount: "-5", reason: "x" }, await admin());
    expect(bad.status).toBe(400);
    const ok = await rest(path, { user_id: userId, amount: -20, reason: "x" }, await admin(), "rest-adj-1");
    expect(ok).toMatchObject({ status: 200, body: { success: true, new_balance: 30 } });
    const again = await rest(
      path,
      { user_id: userId, amount: -20, reason: "x" },
      await admin(),
      "rest-adj-1",
    );
    expect(again.body).toMatchObject({
      success: true,
      new_balance: 30,
      transaction_id: ok.body.transaction_id,
    });
    expect(await balanceOf(db(), userId)).toBe(30);
  });
});

describe(`transferTokens on ${driverName}`, () => {
  it("moves tokens: a debit and a credit, recorded with the operator and the other side", async () => {
    const { userId: from } = await fundUser(t, 300);
    const to = newUserId();
    const input = { fromUserId: from, toUserId: to, amount: 120, reason: "RevenueCat TRANSFER evt-1" };
    const result = await t.gql<Transferred>(TRANSFER, { input }, await admin());
    expect(result.data?.transferTokens).toMatchObject({
      success: true,
      errorCode: null,
      debit: {
        amount: -120,
        balanceAfter: 180,
        kind: "TRANSFER",
        metadata: { transferredBy: "ops-1", toUserId: to },
      },
      credit: {
        amount: 120,
        balanceAfter: 120,
        kind: "TRANSFER",
        metadata: { transferredBy: "ops-1", fromUserId: from },
      },
      from: { balance: 180 },
      to: { balance: 120 },
    });
  });

  it("moves nothing when the sender has too little: neither side is written", async () => {
    const { userId: from } = await fundUser(t, 10);
    const to = newUserId();
    const input = { fromUserId: from, toUserId: to, amount: 11, reason: "x" };
    const result = await t.gql<Transferred>(TRANSFER, { input }, await admin());
    expect(result.data?.transferTokens).toMatchObject({
      success: false,
      errorCode: "INSUFFICIENT_TOKENS",
      debit: null,
    });
    expect(await balanceOf(db(), from)).toBe(10);
    expect(await listEntries(db(), to, { limit: 10 })).toEqual([]);
  });

  it("moves nothing when the receiver would pass the cap: the debit is rolled back", async () => {
    const { userId: from } = await fundUser(t, 10);
    const { userId: to } = await fundUser(t, 2_000_000_000);
    const input = { fromUserId: from, toUserId: to, amount: 5, reason: "x" };
    const result = await t.gql<Transferred>(TRANSFER, { input }, await admin());
    expect(result.data?.transferTokens).toMatchObject({
      success: false,
      errorCode: "BALANCE_LIMIT_EXCEEDED",
    });
    expect(await balanceOf(db(), from)).toBe(10);
    expect(await listEntries(db(), from, { limit: 10 })).toHaveLength(1);
  });

  it("one idempotency key covers both sides: concurrent retries move the tokens once", async () => {
    const { userId: from } = await fundUser(t, 100);
    const to = newUserId();
    const input = {
      fromUserId: from,
      toUserId: to,
      amount: 30,
      reason: "x",
      idempotencyKey: "rc-transfer:evt-9",
    };
    const answers = await Promise.all(
      Array.from({ length: 8 }, async () => t.gql<Transferred>(TRANSFER, { input }, await admin())),
    );
    expect(answers.every((a) => a.data?.transferTokens.success)).toBe(true);
    expect(await balanceOf(db(), from)).toBe(70);
    expect(await balanceOf(db(), to)).toBe(30);
    const reversed = { ...input, fromUserId: to, toUserId: from };
    const conflict = await t.gql<Transferred>(TRANSFER, { input: reversed }, await admin());
    expect(conflict.data?.transferTokens).toMatchObject({
      success: false,
      errorCode: "IDEMPOTENCY_KEY_REUSED",
    });
    expect(await balanceOf(db(), to)).toBe(30);
  });

  it("opposite transfers between the same two users at once neither deadlock nor lose tokens", async () => {
    const { userId: a } = await fundUser(t, 1_000);
    const { userId: b } = await fundUser(t, 1_000);
    const token = await admin();
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => {
        const input = i % 2 ? { fromUserId: a, toUserId: b } : { fromUserId: b, toUserId: a };
        return t.gql<Transferred>(TRANSFER, { input: { ...input, amount: 7, reason: "ping-pong" } }, token);
      }),
    );
    expect((await balanceOf(db(), a)) + (await balanceOf(db(), b))).toBe(2_000);
    expect(await balanceOf(db(), a)).toBe(1_000);
  });

  it("refuses a transfer to oneself; REST answers 200 with both sides and 403 for users", async () => {
    const { userId: from, token } = await fundUser(t, 40);
    const self = await t.gql(
      TRANSFER,
      { input: { fromUserId: from, toUserId: from, amount: 1, reason: "x" } },
      await admin(),
    );
    expect(self.errors?.[0]?.message).toContain("must be different users");
    const to = newUserId();
    const path = "/api/v1/tokens/admin/transfer";
    const body = { from_user_id: from, to_user_id: to, amount: 15, reason: "support" };
    expect((await rest(path, body, token)).status).toBe(403);
    const ok = await rest(path, body, await admin(), "rest-tr-1");
    expect(ok).toMatchObject({
      status: 200,
      body: { success: true, from: { user_id: from, new_balance: 25 }, to: { user_id: to, new_balance: 15 } },
    });
  });
});

const REVERSE = `mutation R($input: ReverseSpendInput!) {
  reverseSpend(input: $input) {
    success newBalance message errorCode
    transaction { amount balanceAfter kind description metadata }
  }
}`;
const SPEND_WITH_ENTRY = `mutation S($input: SpendTokensInput!) {
  spendTokens(input: $input) { success transaction { id } }
}`;

interface Reversed {
  reverseSpend: {
    success: boolean;
    newBalance: number;
    errorCode: string | null;
    transaction: { amount: number; kind: string; metadata: Record<string, unknown> } | null;
  };
}

describe(`reverseSpend on ${driverName} (§E row 34 through GraphQL)`, () => {
  it("gives a spend back once, recorded with the operator; a second call answers the first", async () => {
    const { userId, token } = await fundUser(t, 100);
    const spent = await t.gql<{ spendTokens: { transaction: { id: string } } }>(
      SPEND_WITH_ENTRY,
      { input: { amount: 40, description: "generation that failed" } },
      token,
    );
    const entryId = spent.data?.spendTokens.transaction.id as string;
    const rawId = Buffer.from(entryId, "base64url").toString().split(":")[1];
    const input = { entryId, reason: "the generation failed on our side" };
    const first = await t.gql<Reversed>(REVERSE, { input }, await admin());
    expect(first.data?.reverseSpend).toMatchObject({
      success: true,
      newBalance: 100,
      errorCode: null,
      transaction: {
        amount: 40,
        kind: "ADJUSTMENT",
        metadata: { adjustedBy: "ops-1", reversesEntryId: rawId },
      },
    });
    const again = await t.gql<Reversed>(REVERSE, { input }, await admin());
    expect(again.data?.reverseSpend).toMatchObject({
      success: true,
      newBalance: 100,
      transaction: { amount: 40 },
    });
    expect(await balanceOf(db(), userId)).toBe(100);
    expect(t.logs.messages()).toContain(
      `Admin ops-1 reversed spend ${rawId} of user ${userId} (40 tokens back). New balance: 100`,
    );
  });

  it("refuses users, an unknown entry and an entry that is not a spend, changing nothing", async () => {
    const { userId, token } = await fundUser(t, 10);
    const [granted] = await listEntries(db(), userId, { limit: 1 });
    const globalId = (id: number | string) => Buffer.from(`TokenTransaction:${id}`).toString("base64url");
    const grant = { entryId: globalId(granted?.id ?? 0), reason: "x" };
    const notSpend = await t.gql(REVERSE, { input: grant }, await admin());
    expect(notSpend.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    expect(notSpend.errors?.[0]?.message).toContain("only a SPEND can be reversed");
    const unknown = await t.gql(
      REVERSE,
      { input: { entryId: globalId("999999999999"), reason: "x" } },
      await admin(),
    );
    expect(unknown.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    const user = await t.gql(REVERSE, { input: grant }, token);
    expect(user.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    expect(await balanceOf(db(), userId)).toBe(10);
    expect(await listEntries(db(), userId, { limit: 10 })).toHaveLength(1);
  });
});
