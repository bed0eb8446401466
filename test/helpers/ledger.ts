import { expect } from "vitest";
import type { Executor } from "../../src/db/client.js";
import { getBalance } from "../../src/modules/ledger/ledger.queries.js";
import { newUserId, type TestApp } from "./app.js";

/** The spend mutation with every payload field a test may check. */
export const SPEND = `mutation S($input: SpendTokensInput!) {
  spendTokens(input: $input) { success newBalance errorCode retryAfterSeconds message }
}`;

const GRANT = "mutation G($input: GrantTokensInput!) { grantTokens(input: $input) { success } }";

/**
 * A user with `amount` tokens, granted through the API by an admin, and a token for them. Each call
 * makes a new user, so tests sharing a database never see each other's balances.
 */
export async function fundUser(
  t: Pick<TestApp, "token" | "gql">,
  amount: number,
  userId = newUserId(),
): Promise<{ userId: string; token: string }> {
  const admin = await t.token(newUserId("admin"), { admin: true });
  const granted = await t.gql(GRANT, { input: { userId, amount, reason: "setup" } }, admin);
  expect(granted.data).toEqual({ grantTokens: { success: true } });
  return { userId, token: await t.token(userId) };
}

/** The user's balance, read straight from the database. */
export async function balanceOf(db: Executor, userId: string): Promise<number> {
  return (await getBalance(db, userId)).balance;
}
