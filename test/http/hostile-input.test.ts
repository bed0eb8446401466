import { once } from "node:events";
import { connect } from "node:net";
import { sql } from "drizzle-orm";
import fc from "fast-check";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queryRows } from "../../src/db/client.js";
import { JWT_SECRET, newUserId } from "../helpers/app.js";
import { driverName } from "../helpers/database.js";
import { deliver, fixture } from "../helpers/revenuecat.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

/**
 * Input that passes the obvious checks but can never be stored (NUL characters, lone surrogates,
 * absurd nesting, malformed ids) must be refused at the door with a 4xx that says what is wrong, and
 * must write nothing. Today's main answered 500 / "Unexpected error." to each.
 */

let t: TestServer;
let userToken: string;
let adminToken: string;
const userId = newUserId();

beforeAll(async () => {
  t = await startTestServer();
  userToken = await t.token(userId);
  adminToken = await t.token(newUserId("admin"), { admin: true });
});
afterAll(() => t.close());

const SPEND = `mutation S($input: SpendTokensInput!) {
  spendTokens(input: $input) { success errorCode }
}`;
const GRANT = `mutation G($input: GrantTokensInput!) { grantTokens(input: $input) { success errorCode } }`;

interface LedgerState {
  entries: number;
  tokens: number;
  events: number;
}

async function ledgerState(): Promise<LedgerState> {
  const [row] = await queryRows<{
    entries: string | number;
    tokens: string | number;
    events: string | number;
  }>(
    t.db.handle.db,
    sql`SELECT (SELECT count(*) FROM token_transactions) AS entries,
               (SELECT coalesce(sum(balance), 0) FROM token_balances) AS tokens,
               (SELECT count(*) FROM revenuecat_events) AS events`,
  );
  return { entries: Number(row?.entries), tokens: Number(row?.tokens), events: Number(row?.events) };
}

/** Lines the app logged at error level or above: an unexpected error, which a refusal must never be. */
function errorLines(from: number): Record<string, unknown>[] {
  return t.logs.lines.slice(from).filter((line) => Number(line.level) >= 50);
}

async function postGraphql(
  query: string,
  variables: Record<string, unknown>,
  token = userToken,
): Promise<{
  status: number;
  body: { data?: unknown; errors?: { message: string; extensions?: { code?: string } }[] };
}> {
  const response = await fetch(`${t.url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: bodyText({ query, variables }),
  });
  return { status: response.status, body: (await response.json()) as never };
}

/** JSON text of an object nested `depth` levels (JSON.stringify itself overflows the stack on it). */
function nestedJson(depth: number): string {
  return `${'{"a":'.repeat(depth)}true${"}".repeat(depth)}`;
}

/** Stands for metadata too deep to build as an object; replaced by nestedJson text in the body. */
const DEEP = "__deep_metadata__";
const bodyText = (value: unknown) => JSON.stringify(value).replace(`"${DEEP}"`, nestedJson(5000));

const LONE_SURROGATE = "\ud800";
const NUL = "\u0000";

describe(`refused input on ${driverName}: 400 / BAD_USER_INPUT with a reason, nothing written`, () => {
  const spendCases: [string, Record<string, unknown>, RegExp][] = [
    ["NUL in description", { amount: 1, description: `a${NUL}b` }, /description/],
    ["lone surrogate in description", { amount: 1, description: `a${LONE_SURROGATE}b` }, /description/],
    ["NUL in idempotencyKey", { amount: 1, description: "x", idempotencyKey: `k${NUL}` }, /idempotencyKey/],
    [
      "lone surrogate in idempotencyKey",
      { amount: 1, description: "x", idempotencyKey: `k${LONE_SURROGATE}` },
      /idempotencyKey/,
    ],
    ["NUL in a metadata key", { amount: 1, description: "x", metadata: { [`k${NUL}`]: 1 } }, /metadata/],
    ["NUL in a metadata value", { amount: 1, description: "x", metadata: { k: `v${NUL}` } }, /metadata/],
    [
      "lone surrogate deep in metadata",
      { amount: 1, description: "x", metadata: { k: [{ j: `v${LONE_SURROGATE}` }] } },
      /metadata/,
    ],
    ["metadata nested 5,000 levels", { amount: 1, description: "x", metadata: DEEP }, /metadata/],
  ];

  it.each(spendCases)("GraphQL spend: %s", async (_name, input, reason) => {
    const before = await ledgerState();
    const logged = t.logs.lines.length;
    const { status, body } = await postGraphql(SPEND, { input });
    expect(status).toBeLessThan(500);
    expect(body.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    expect(body.errors?.[0]?.message).toMatch(reason);
    expect(await ledgerState()).toEqual(before);
    expect(errorLines(logged)).toEqual([]);
  });

  it.each(spendCases)("REST spend: %s", async (_name, input, reason) => {
    const before = await ledgerState();
    const { idempotencyKey, ...rest } = input;
    const response = await fetch(`${t.url}/api/v1/tokens/spend`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${userToken}` },
      // A header cannot carry NUL, so the REST body takes the key's place in this test.
      body: bodyText({ ...rest, ...(idempotencyKey ? { description: idempotencyKey } : {}) }),
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("BAD_USER_INPUT");
    expect(body.error.message).toMatch(idempotencyKey ? /description/ : reason);
    expect(await ledgerState()).toEqual(before);
  });

  it("GraphQL grant: NUL or a lone surrogate in userId or reason", async () => {
    const before = await ledgerState();
    for (const input of [
      { userId: `u${NUL}`, amount: 1, reason: "x" },
      { userId: `u${LONE_SURROGATE}`, amount: 1, reason: "x" },
      { userId: newUserId(), amount: 1, reason: `r${NUL}` },
    ]) {
      const { status, body } = await postGraphql(GRANT, { input }, adminToken);
      expect(status).toBeLessThan(500);
      expect(body.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    }
    expect(await ledgerState()).toEqual(before);
  });

  it.each([
    ["TokenTransaction:NaN"],
    ["TokenTransaction:1.5"],
    ["TokenTransaction:1e20"],
    ["TokenTransaction:12345678901234567890"],
    ["TokenTransaction:-1"],
    ["TokenTransaction:"],
  ])("node(id:) with the malformed global id %s", async (raw) => {
    const id = Buffer.from(raw).toString("base64");
    const logged = t.logs.lines.length;
    const { status, body } = await postGraphql("query N($id: ID!) { node(id: $id) { id } }", { id });
    expect(status).toBeLessThan(500);
    expect(body.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    expect(body.errors?.[0]?.message).toMatch(/id/i);
    expect(errorLines(logged)).toEqual([]);
  });

  it("a token whose sub holds NUL or a lone surrogate is refused as unauthenticated", async () => {
    for (const sub of [`u${NUL}`, `u${LONE_SURROGATE}`]) {
      const token = await new SignJWT({ sub })
        .setProtectedHeader({ alg: "HS256" })
        .setExpirationTime("1h")
        .sign(new TextEncoder().encode(JWT_SECRET));
      const { status, body } = await postGraphql("{ balance { balance } }", {}, token);
      expect(status).toBeLessThan(500);
      expect(body.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
      const rest = await fetch(`${t.url}/api/v1/tokens/balance`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(rest.status).toBe(401);
    }
  });

  it("webhook: NUL in event.id, type or app_user_id is a 400 and is not stored", async () => {
    const before = await ledgerState();
    for (const field of ["id", "type", "app_user_id"] as const) {
      const body = fixture("NON_RENEWING_PURCHASE__rc-docs", { product_id: "token_pack_small" });
      body.event[field] = `bad${NUL}value`;
      const response = await deliver(t.url, body);
      expect(response.status).toBe(400);
      expect(response.body.error?.message).toContain(`event.${field}`);
    }
    expect(await ledgerState()).toEqual(before);
  });

  it("webhook: a mapped purchase for a 300-character app_user_id answers 200 'failed' with the reason, crediting nothing", async () => {
    const before = await ledgerState();
    const body = fixture("NON_RENEWING_PURCHASE__rc-docs", {
      product_id: "token_pack_small",
      app_user_id: "u".repeat(300),
    });
    const response = await deliver(t.url, body);
    expect(response.status).toBe(200);
    expect(response.body.outcome).toBe("failed");
    expect(response.body.detail).toMatch(/app user id/i);
    const after = await ledgerState();
    expect({ entries: after.entries, tokens: after.tokens }).toEqual({
      entries: before.entries,
      tokens: before.tokens,
    });
    // A redelivery gets the same answer and still credits nothing.
    expect((await deliver(t.url, body)).body.outcome).toMatch(/failed|duplicate/);
    expect((await ledgerState()).entries).toBe(before.entries);
  });
});

describe(`authentication edge cases on ${driverName}`, () => {
  it("a numeric sub is refused: the subject must be a non-empty string", async () => {
    for (const sub of [12345, "", 0]) {
      const token = await new SignJWT({ sub } as never)
        .setProtectedHeader({ alg: "HS256" })
        .setExpirationTime("1h")
        .sign(new TextEncoder().encode(JWT_SECRET));
      const { body } = await postGraphql("{ balance { balance } }", {}, token);
      expect(body.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
    }
  });

  it("two Authorization headers are refused with 400 on every door", async () => {
    const other = await t.token(newUserId());
    // fetch folds repeated headers into one value; write two real header lines on a raw socket.
    const send = async (path: string, method = "GET", body = ""): Promise<number> => {
      const { port } = new URL(t.url);
      const socket = connect(Number(port), "127.0.0.1");
      await once(socket, "connect");
      socket.write(
        `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${userToken}\r\n` +
          `Authorization: Bearer ${other}\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
      let answer = "";
      socket.on("data", (chunk: Buffer) => {
        answer += chunk.toString();
      });
      await once(socket, "end");
      return Number(/^HTTP\/1\.1 (\d+)/.exec(answer)?.[1]);
    };
    expect(await send("/api/v1/tokens/balance")).toBe(400);
    expect(await send("/graphql", "POST", JSON.stringify({ query: "{ balance { balance } }" }))).toBe(400);
    expect(await send("/api/v1/tokens/webhook/revenuecat", "POST", "{}")).toBe(400);
  });

  it("an admin grant's idempotency key and the user's own spend key cannot block each other", async () => {
    const target = newUserId();
    const key = `shared-${newUserId()}`;
    const grant = await postGraphql(
      GRANT,
      { input: { userId: target, amount: 50, reason: "welcome", idempotencyKey: key } },
      adminToken,
    );
    expect(grant.body.data).toEqual({ grantTokens: { success: true, errorCode: null } });
    const spend = await postGraphql(
      SPEND,
      { input: { amount: 5, description: "first spend", idempotencyKey: key } },
      await t.token(target),
    );
    expect(spend.body.data).toEqual({ spendTokens: { success: true, errorCode: null } });
    const balance = await postGraphql("{ balance { balance } }", {}, await t.token(target));
    expect(balance.body.data).toEqual({ balance: { balance: 45 } });
  });
});

describe(`every door under random input on ${driverName} (fast-check)`, () => {
  // Random strings include NUL, lone surrogates and other unstorable text.
  const text = fc.oneof(
    fc.string({ unit: "binary", maxLength: 40 }),
    fc.string({ maxLength: 40 }),
    fc.constantFrom("", NUL, LONE_SURROGATE, "\udfff", "x".repeat(600), "TokenTransaction:1e20"),
  );
  const json = fc.jsonValue({ maxDepth: 4 });
  const loose = fc.oneof(text, fc.integer(), fc.double(), fc.boolean(), fc.constant(null), json);

  it("no 5xx, no error-level log line, and the ledger unchanged", async () => {
    const before = await ledgerState();
    const logged = t.logs.lines.length;
    const doors = fc.oneof(
      fc.record({
        door: fc.constant("graphql-spend"),
        amount: loose,
        description: loose,
        metadata: loose,
        key: loose,
      }),
      fc.record({ door: fc.constant("rest-spend"), body: fc.oneof(json, text) }),
      fc.record({ door: fc.constant("node"), id: text }),
      fc.record({ door: fc.constant("history"), limit: text }),
      fc.record({ door: fc.constant("transactions"), first: loose, after: loose }),
      fc.record({
        door: fc.constant("webhook"),
        event: fc.dictionary(
          fc.constantFrom(
            "id",
            "type",
            "app_user_id",
            "product_id",
            "transaction_id",
            "store",
            "environment",
            "aliases",
            "price",
          ),
          loose,
        ),
      }),
      fc.record({ door: fc.constant("token"), sub: loose }),
    );
    await fc.assert(
      fc.asyncProperty(doors, async (input) => {
        const status = await knock(input as Record<string, unknown>);
        expect(status).toBeLessThan(500);
      }),
      { numRuns: 300 },
    );
    expect(errorLines(logged)).toEqual([]);
    expect(await ledgerState()).toMatchObject({ entries: before.entries, tokens: before.tokens });
  });
});

/** Sends one random request to the door it names and returns the HTTP status. */
async function knock(input: Record<string, unknown>): Promise<number> {
  switch (input.door) {
    case "graphql-spend": {
      const variables = {
        input: {
          amount: input.amount,
          description: input.description,
          metadata: input.metadata,
          idempotencyKey: input.key,
        },
      };
      return (await postGraphql(SPEND, variables)).status;
    }
    case "rest-spend": {
      const response = await fetch(`${t.url}/api/v1/tokens/spend`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${userToken}` },
        body: typeof input.body === "string" ? input.body : JSON.stringify(input.body),
      });
      await response.arrayBuffer();
      return response.status;
    }
    case "node": {
      const id = Buffer.from(String(input.id)).toString("base64");
      return (await postGraphql("query N($id: ID!) { node(id: $id) { id } }", { id })).status;
    }
    case "history": {
      const response = await fetch(
        `${t.url}/api/v1/tokens/history?limit=${encodeURIComponent(String(input.limit).toWellFormed())}`,
        { headers: { authorization: `Bearer ${userToken}` } },
      );
      await response.arrayBuffer();
      return response.status;
    }
    case "transactions":
      return (
        await postGraphql(
          "query T($first: Int, $after: String) { transactions(first: $first, after: $after) { edges { cursor } } }",
          {
            first: input.first,
            after: input.after,
          },
        )
      ).status;
    case "webhook": {
      const response = await deliver(t.url, { api_version: "1.0", event: input.event });
      return response.status;
    }
    default: {
      const token = await new SignJWT({ sub: input.sub } as never)
        .setProtectedHeader({ alg: "HS256" })
        .setExpirationTime("1h")
        .sign(new TextEncoder().encode(JWT_SECRET));
      return (await postGraphql("{ balance { balance } }", {}, token)).status;
    }
  }
}
