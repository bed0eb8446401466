import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newUserId, startTestApp, type TestApp } from "../helpers/app.js";
import { driverName, useTestDatabase } from "../helpers/database.js";

const db = useTestDatabase();

describe(`GraphQL abuse limits on ${driverName}`, () => {
  let t: TestApp;
  let token: string;
  beforeAll(async () => {
    t = await startTestApp({}, db.current());
    token = await t.token(newUserId());
  });
  afterAll(() => t.close());

  const post = (body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${t.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}`, ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
  const firstError = async (query: string) =>
    ((await t.gql(query, {}, token)).errors?.[0]?.message ?? "") as string;

  it("refuses deep queries", async () => {
    const nest = (depth: number): string =>
      depth === 0 ? "id" : `... on TokenTransaction { ... on Node { ${nest(depth - 1)} } }`;
    const deep = `{ transactions { edges { node { ${nest(4)} } } } }`;
    expect(await firstError(deep)).toMatch(/depth/i);
    const honest = "{ transactions { edges { node { id amount } } pageInfo { hasNextPage } } }";
    expect(await firstError(honest)).toBe("");
  });

  it("refuses too many aliases, too many tokens and too costly queries", async () => {
    const aliases = `{ ${Array.from({ length: 11 }, (_, i) => `b${i}: balance { balance }`).join(" ")} }`;
    expect(await firstError(aliases)).toMatch(/alias/i);
    const tokens = `{ balance { ${Array.from({ length: 1100 }, () => "balance").join(" ")} } }`;
    expect(await firstError(tokens)).toMatch(/token/i);
    const costly =
      "{ transactions(first: 1000) { edges { cursor node { id amount balanceAfter kind description metadata createdAt } } } }";
    expect(await firstError(costly)).toMatch(/cost/i);
  });

  it("refuses batched requests", async () => {
    const response = await post([{ query: "{ balance { balance } }" }, { query: "{ balance { balance } }" }]);
    expect(response.status).toBeGreaterThanOrEqual(400);
  });

  it("only the Authorization header authenticates, so a request a browser sends cross-site carries no authority", async () => {
    const query = encodeURIComponent("{ balance { balance } }");
    // Stock clients' GET queries work with their default settings (urql sends queries as GET).
    const get = await fetch(`${t.url}/graphql?query=${query}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(await get.json()).toEqual({ data: { balance: { balance: 0 } } });
    // What a cross-site page can make a browser send (a GET, a form post, cookies) has no credential.
    const plain = await fetch(`${t.url}/graphql?query=${query}`, {
      headers: { cookie: `authorization=Bearer ${token}` },
    });
    expect(
      ((await plain.json()) as { errors: { extensions: { code: string } }[] }).errors[0]?.extensions.code,
    ).toBe("UNAUTHENTICATED");
    const form = await fetch(`${t.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: `query=${encodeURIComponent('mutation { spendTokens(input: {amount: 1, description: "x"}) { success } }')}`,
    });
    const formBody = await form.text();
    expect(formBody).not.toContain('"success":true');
    // A mutation is never run from a GET.
    const mutation = encodeURIComponent(
      'mutation { spendTokens(input: {amount: 1, description: "x"}) { success } }',
    );
    const getMutation = await fetch(`${t.url}/graphql?query=${mutation}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(getMutation.status).toBe(405);
  });

  it("answers 413 to a body over 1 MB", async () => {
    const response = await post({
      query: "{ balance { balance } }",
      variables: { pad: "x".repeat(1_100_000) },
    });
    expect(response.status).toBe(413);
  });

  it("masks unexpected errors and keeps internals out of messages", async () => {
    const result = await t.gql('{ node(id: "VG9rZW5UcmFuc2FjdGlvbjphYmM") { id } }', {}, token);
    for (const error of result.errors ?? [])
      expect(JSON.stringify(error)).not.toMatch(/stack|select |postgres/i);
  });

  it("turns introspection off in production unless GRAPHQL_INTROSPECTION=true", async () => {
    const production = {
      NODE_ENV: "production",
      PRODUCT_TOKEN_MAP: '{"token_pack_small":100}',
      ALLOW_EMBEDDED_IN_PRODUCTION: "true",
    };
    const closed = await startTestApp(production, db.current());
    const open = await startTestApp({ ...production, GRAPHQL_INTROSPECTION: "true" }, db.current());
    try {
      const query = "{ __schema { queryType { name } } }";
      const user = await closed.token(newUserId());
      expect((await closed.gql(query, {}, user)).errors?.[0]?.message).toMatch(/introspection/i);
      expect((await open.gql(query, {}, user)).data).toEqual({ __schema: { queryType: { name: "Query" } } });
    } finally {
      await closed.close();
      await open.close();
    }
  });
});
