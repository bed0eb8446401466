import { describe, expect, it } from "vitest";
import { useTestApp } from "../helpers/app.js";
import { driverName } from "../helpers/database.js";
import { balanceOf, fundUser, SPEND } from "../helpers/ledger.js";

// With the write queue bounded (WRITE_QUEUE_LIMIT), a burst of spends past it is refused at once
// with 503 OVERLOADED and Retry-After, in each door's error shape, and writes nothing; every spend
// that was answered 200 was written.

const t = useTestApp({ WRITE_QUEUE_LIMIT: "1" });

interface Answer {
  status: number;
  retryAfter: string | null;
  code: string | undefined;
  spent: boolean;
}

async function restSpend(token: string): Promise<Answer> {
  const response = await fetch(`${t.url}/api/v1/tokens/spend`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ amount: 1, description: "burst" }),
  });
  const body = (await response.json()) as { success?: boolean; error?: { code: string } };
  const retryAfter = response.headers.get("retry-after");
  return {
    status: response.status,
    retryAfter,
    code: body.error?.code,
    spent: body.success === true,
  };
}

async function graphqlSpend(token: string): Promise<Answer> {
  const response = await fetch(`${t.url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: SPEND, variables: { input: { amount: 1, description: "burst" } } }),
  });
  const body = (await response.json()) as {
    data?: { spendTokens: { success: boolean } | null } | null;
    errors?: { extensions?: { code?: string } }[];
  };
  return {
    status: response.status,
    retryAfter: response.headers.get("retry-after"),
    code: body.errors?.[0]?.extensions?.code,
    spent: body.data?.spendTokens?.success === true,
  };
}

describe(`a full write queue on ${driverName}`, () => {
  it.each([
    ["REST", restSpend],
    ["GraphQL", graphqlSpend],
  ])(
    "%s answers 503 OVERLOADED with Retry-After, and writes only what it answered 200",
    async (_door, spend) => {
      const { userId, token } = await fundUser(t, 100_000);
      const answers = await Promise.all(Array.from({ length: 200 }, () => spend(token)));
      const refused = answers.filter((answer) => answer.status === 503);
      const spent = answers.filter((answer) => answer.status === 200 && answer.spent);
      expect(refused.length + spent.length).toBe(answers.length);
      expect(refused.length).toBeGreaterThan(0);
      for (const answer of refused) expect(answer).toMatchObject({ code: "OVERLOADED", retryAfter: "1" });
      expect(await balanceOf(t.db.handle.db, userId)).toBe(100_000 - spent.length);
    },
  );
});
