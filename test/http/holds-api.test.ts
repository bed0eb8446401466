import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { newUserId, useTestApp } from "../helpers/app.js";
import { driverName } from "../helpers/database.js";
import { fundUser } from "../helpers/ledger.js";

// Holds (issue 19) through both doors, over real HTTP with real signed tokens: the operations, who may
// act on a hold, and every HoldErrorCode once through GraphQL and once through REST.

const t = useTestApp({ HOLD_MAX_ACTIVE_PER_USER: "3", RATE_LIMIT_SPEND_PER_MINUTE: "8" });

const HOLD = "id userId amount status captured createdAt expiresAt closedAt description metadata";
const PAYLOAD = `success message errorCode replayed hold { ${HOLD} } balance { balance held available }`;
const RESERVE = `mutation R($input: ReserveTokensInput!) { reserveTokens(input: $input) { ${PAYLOAD} retryAfterSeconds } }`;
const CAPTURE = `mutation C($input: CaptureHoldInput!) { captureHold(input: $input) { ${PAYLOAD} shortfall transaction { id amount kind balanceAfter } } }`;
const RELEASE = `mutation L($input: ReleaseHoldInput!) { releaseHold(input: $input) { ${PAYLOAD} } }`;

interface Answer {
  status: number;
  success: boolean;
  errorCode: string | null;
  hold: { id: string; amount: number; status: string; captured: number | null } | null;
  /** The balance as the answer shows it. */
  balance: { balance: number; held: number; available: number };
  replayed: boolean;
  retryAfter: number | null;
}

/** One door (GraphQL or REST) as the same four calls, so a test runs through both. */
interface Door {
  reserve(token: string, input: Record<string, unknown>): Promise<Answer>;
  capture(token: string, holdId: string, input: Record<string, unknown>): Promise<Answer>;
  release(token: string, holdId: string): Promise<Answer>;
  get(token: string, holdId: string): Promise<{ status: string } | null>;
}

type Payload = Omit<Answer, "status" | "retryAfter"> & { retryAfterSeconds?: number | null };

async function viaGraphql(query: string, input: Record<string, unknown>, token: string): Promise<Answer> {
  const result = await t.gql<Record<string, Payload>>(query, { input }, token);
  expect(result.errors).toBeUndefined();
  const payload = Object.values(result.data ?? {})[0] as Payload;
  return { ...payload, status: 200, retryAfter: payload.retryAfterSeconds ?? null };
}

const graphql: Door = {
  reserve: (token, input) => viaGraphql(RESERVE, input, token),
  capture: (token, holdId, input) => viaGraphql(CAPTURE, { ...input, holdId }, token),
  release: (token, holdId) => viaGraphql(RELEASE, { holdId }, token),
  async get(token, holdId) {
    const result = await t.gql<{ hold: { status: string } | null }>(
      "query H($id: ID!) { hold(id: $id) { status } }",
      { id: holdId },
      token,
    );
    return result.data?.hold ?? null;
  },
};

async function post(path: string, token: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${t.url}/api/v1/tokens/holds${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}`, ...headers },
    body: JSON.stringify(body),
  });
  const json = (await response.json()) as Record<string, unknown>;
  const hold = json.hold as Answer["hold"];
  return {
    status: response.status,
    success: json.success as boolean,
    errorCode: (json.error_code as string | undefined) ?? null,
    hold,
    balance: { balance: json.new_balance, held: json.held, available: json.available } as Answer["balance"],
    replayed: json.replayed as boolean,
    retryAfter:
      response.headers.get("retry-after") === null ? null : Number(response.headers.get("retry-after")),
  };
}

const rest: Door = {
  reserve: (token, { idempotencyKey, ttlSeconds, ...body }) =>
    post("", token, { ...body, ttl_seconds: ttlSeconds }, { "idempotency-key": String(idempotencyKey) }),
  capture: (token, holdId, input) => post(`/${holdId}/capture`, token, input),
  release: (token, holdId) => post(`/${holdId}/release`, token, {}),
  async get(token, holdId) {
    const response = await fetch(`${t.url}/api/v1/tokens/holds/${holdId}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    return response.status === 404 ? null : ((await response.json()) as { status: string });
  },
};

const doors = [
  ["GraphQL", graphql],
  ["REST", rest],
] as const;

const key = () => `job-${randomUUID()}`;

describe.each(doors)(`holds through %s on ${driverName}`, (doorName, door) => {
  const refusal = (code: string, status: number) =>
    doorName === "GraphQL" ? { status: 200, errorCode: code } : { status, errorCode: code };

  it("reserve, capture less, and the rest goes back: one SPEND of what was captured", async () => {
    const { token } = await fundUser(t, 500);
    const reserved = await door.reserve(token, { amount: 120, idempotencyKey: key(), description: "image" });
    expect(reserved).toMatchObject({
      status: doorName === "GraphQL" ? 200 : 201,
      success: true,
      errorCode: null,
      replayed: false,
      hold: { amount: 120, status: "ACTIVE", captured: null },
      balance: { balance: 500, held: 120, available: 380 },
    });
    const holdId = reserved.hold?.id as string;
    const captured = await door.capture(token, holdId, { amount: 70, description: "image, 70 steps" });
    expect(captured).toMatchObject({
      status: 200,
      success: true,
      hold: { id: holdId, status: "CAPTURED", captured: 70 },
      balance: { balance: 430, held: 0, available: 430 },
    });
    // Idempotent by hold: the same amount replays, nothing moves twice.
    const again = await door.capture(token, holdId, { amount: 70 });
    expect(again).toMatchObject({ success: true, replayed: true, balance: { balance: 430, held: 0 } });
    expect(await door.get(token, holdId)).toMatchObject({ status: "CAPTURED" });
  });

  it("a reserve replays by its key (200 over REST) and a release gives everything back, twice harmlessly", async () => {
    const { token } = await fundUser(t, 100);
    const input = { amount: 40, idempotencyKey: key(), ttlSeconds: 60 };
    const first = await door.reserve(token, input);
    const replay = await door.reserve(token, input);
    expect(replay).toMatchObject({
      status: 200,
      success: true,
      replayed: true,
      hold: { id: first.hold?.id },
    });
    expect(replay.balance).toEqual({ balance: 100, held: 40, available: 60 });
    const holdId = first.hold?.id as string;
    const released = await door.release(token, holdId);
    expect(released).toMatchObject({
      success: true,
      hold: { status: "RELEASED" },
      balance: { held: 0, available: 100 },
    });
    expect(await door.release(token, holdId)).toMatchObject({ success: true, replayed: true });
  });

  it("a user cannot see, capture or release another user's hold (HOLD_NOT_FOUND); an admin can capture it", async () => {
    const owner = await fundUser(t, 100);
    const other = await t.token(newUserId());
    const { hold } = await door.reserve(owner.token, { amount: 30, idempotencyKey: key() });
    const holdId = hold?.id as string;
    expect(await door.get(other, holdId)).toBeNull();
    expect(await door.capture(other, holdId, { amount: 10 })).toMatchObject(refusal("HOLD_NOT_FOUND", 404));
    expect(await door.release(other, holdId)).toMatchObject(refusal("HOLD_NOT_FOUND", 404));
    expect(await door.capture(owner.token, "999999999", { amount: 1 })).toMatchObject(
      refusal("HOLD_NOT_FOUND", 404),
    );
    const admin = await t.token(newUserId("admin"), { admin: true });
    expect(await door.get(admin, holdId)).toMatchObject({ status: "ACTIVE" });
    const captured = await door.capture(admin, holdId, { amount: 25 });
    // The answer shows the owner's balance, not the admin's.
    expect(captured).toMatchObject({
      success: true,
      hold: { captured: 25 },
      balance: { balance: 75, held: 0 },
    });
  });

  it("refuses INSUFFICIENT_TOKENS against available (balance less held), INVALID_TTL and IDEMPOTENCY_KEY_REUSED", async () => {
    const { token } = await fundUser(t, 100);
    await door.reserve(token, { amount: 80, idempotencyKey: key() });
    expect(await door.reserve(token, { amount: 30, idempotencyKey: key() })).toMatchObject({
      ...refusal("INSUFFICIENT_TOKENS", 409),
      success: false,
      hold: null,
      balance: { balance: 100, held: 80, available: 20 },
    });
    expect(await door.reserve(token, { amount: 5, idempotencyKey: key(), ttlSeconds: 86_401 })).toMatchObject(
      refusal("INVALID_TTL", 400),
    );
    const reused = key();
    await door.reserve(token, { amount: 5, idempotencyKey: reused });
    expect(await door.reserve(token, { amount: 6, idempotencyKey: reused })).toMatchObject(
      refusal("IDEMPOTENCY_KEY_REUSED", 409),
    );
  });

  it("refuses TOO_MANY_HOLDS past HOLD_MAX_ACTIVE_PER_USER (3 here)", async () => {
    const { token } = await fundUser(t, 100);
    for (let i = 0; i < 3; i += 1) {
      expect(await door.reserve(token, { amount: 1, idempotencyKey: key() })).toMatchObject({
        success: true,
      });
    }
    expect(await door.reserve(token, { amount: 1, idempotencyKey: key() })).toMatchObject(
      refusal("TOO_MANY_HOLDS", 409),
    );
  });

  it("refuses RATE_LIMITED past the spend limit, which reserves count against (with Retry-After)", async () => {
    const { token } = await fundUser(t, 1);
    let answer: Answer | undefined;
    for (let i = 0; i < 9; i += 1) answer = await door.reserve(token, { amount: 5, idempotencyKey: key() });
    expect(answer).toMatchObject(refusal("RATE_LIMITED", 429));
    expect(answer?.retryAfter).toBeGreaterThan(0);
  });

  it("refuses AMOUNT_EXCEEDS_HOLD, HOLD_ALREADY_CAPTURED, HOLD_RELEASED and HOLD_EXPIRED", async () => {
    const { token } = await fundUser(t, 100);
    const captured = (await door.reserve(token, { amount: 10, idempotencyKey: key() })).hold?.id as string;
    expect(await door.capture(token, captured, { amount: 11 })).toMatchObject({
      ...refusal("AMOUNT_EXCEEDS_HOLD", 409),
      hold: { status: "ACTIVE" },
    });
    await door.capture(token, captured, { amount: 8 });
    expect(await door.capture(token, captured, { amount: 9 })).toMatchObject(
      refusal("HOLD_ALREADY_CAPTURED", 409),
    );
    expect(await door.release(token, captured)).toMatchObject(refusal("HOLD_ALREADY_CAPTURED", 409));

    const released = (await door.reserve(token, { amount: 10, idempotencyKey: key() })).hold?.id as string;
    await door.release(token, released);
    expect(await door.capture(token, released, { amount: 1 })).toMatchObject({
      ...refusal("HOLD_RELEASED", 409),
      hold: { status: "RELEASED" },
    });

    const expiring = await door.reserve(token, { amount: 10, idempotencyKey: key(), ttlSeconds: 1 });
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    // Refused by the clock, before any sweep: the tokens are free again.
    expect(await door.capture(token, expiring.hold?.id as string, { amount: 5 })).toMatchObject({
      ...refusal("HOLD_EXPIRED", 409),
      hold: { status: "EXPIRED" },
      balance: { balance: 92, held: 0, available: 92 },
    });
  });
});

describe(`holds' input and listing on ${driverName}`, () => {
  it("GraphQL: malformed input is BAD_USER_INPUT like spendTokens'; holds lists newest first by status", async () => {
    const { userId, token } = await fundUser(t, 100);
    const bad = await t.gql(RESERVE, { input: { amount: -1, idempotencyKey: key() } }, token);
    expect(bad.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    const a = await graphql.reserve(token, { amount: 1, idempotencyKey: key() });
    const b = await graphql.reserve(token, { amount: 2, idempotencyKey: key() });
    await graphql.release(token, a.hold?.id as string);
    const LIST = `query L($status: HoldStatus, $first: Int, $after: String, $userId: ID) {
      holds(status: $status, first: $first, after: $after, userId: $userId) {
        edges { node { id status } } pageInfo { hasNextPage endCursor } } }`;
    const all = await t.gql<{
      holds: { edges: { node: { id: string } }[]; pageInfo: { hasNextPage: boolean; endCursor: string } };
    }>(LIST, { first: 1 }, token);
    expect(all.data?.holds.edges.map((edge) => edge.node.id)).toEqual([b.hold?.id]);
    expect(all.data?.holds.pageInfo.hasNextPage).toBe(true);
    const next = await t.gql<{ holds: { edges: { node: { id: string } }[] } }>(
      LIST,
      { first: 1, after: all.data?.holds.pageInfo.endCursor },
      token,
    );
    expect(next.data?.holds.edges.map((edge) => edge.node.id)).toEqual([a.hold?.id]);
    const active = await t.gql<{ holds: { edges: { node: { id: string; status: string } }[] } }>(
      LIST,
      { status: "ACTIVE" },
      token,
    );
    expect(active.data?.holds.edges.map((edge) => edge.node)).toEqual([{ id: b.hold?.id, status: "ACTIVE" }]);
    const someoneElse = await t.gql(LIST, { userId }, await t.token(newUserId()));
    expect(someoneElse.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    const admin = await t.gql<{ holds: { edges: unknown[] } }>(
      LIST,
      { userId },
      await t.token(newUserId("admin"), { admin: true }),
    );
    expect(admin.data?.holds.edges).toHaveLength(2);
  });

  it("REST: 400 for a malformed body or query; GET /holds?status=active lists the caller's", async () => {
    const { token } = await fundUser(t, 100);
    expect((await post("", token, { amount: "ten" }, { "idempotency-key": key() })).status).toBe(400);
    expect((await post("", token, { amount: 5 })).status).toBe(400);
    const held = await rest.reserve(token, { amount: 5, idempotencyKey: key() });
    const list = async (query: string) =>
      fetch(`${t.url}/api/v1/tokens/holds${query}`, { headers: { authorization: `Bearer ${token}` } });
    const response = await list("?status=active");
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      holds: [{ id: held.hold?.id, amount: 5, status: "ACTIVE" }],
      has_more: false,
      next_after: null,
    });
    expect((await list("?status=spent")).status).toBe(400);
    expect((await list("?limit=0")).status).toBe(400);
    expect((await fetch(`${t.url}/api/v1/tokens/holds/1/capture`)).status).toBe(405);
    expect((await list("/%E0%A4%A/capture")).status).toBe(400);
    expect((await fetch(`${t.url}/api/v1/tokens/holds`)).status).toBe(401);
  });
});
