import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { useTestApp } from "../helpers/app.js";
import { driverName } from "../helpers/database.js";
import { balanceOf, fundUser } from "../helpers/ledger.js";

const DEADLINE_MS = 1_500;
const t = useTestApp({ DATABASE_DEADLINE_MS: String(DEADLINE_MS) });

/** Holds the balances table locked for `ms`: every spend (and, on PGlite, every query) waits behind it. */
function blockBalances(ms: number): Promise<void> {
  return t.db.handle.db.transaction(async (tx) => {
    await tx.execute(sql`LOCK TABLE token_balances IN ACCESS EXCLUSIVE MODE`);
    await new Promise((resolve) => setTimeout(resolve, ms));
  });
}

const spend = (token: string, key: string) =>
  fetch(`${t.url}/api/v1/tokens/spend`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "idempotency-key": key },
    body: JSON.stringify({ amount: 1, description: "behind a lock" }),
  });

describe(`the request deadline on ${driverName}`, () => {
  it("answers a spend the database holds up with 503 at the deadline; the write lands later and its retry applies it once", async () => {
    const { userId, token } = await fundUser(t, 10);
    const blocked = blockBalances(DEADLINE_MS + 2_500);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const started = Date.now();
    const answer = await spend(token, "held-1");
    const took = Date.now() - started;
    expect(answer.status).toBe(503);
    expect(took).toBeGreaterThanOrEqual(DEADLINE_MS - 100);
    expect(took).toBeLessThan(DEADLINE_MS + 1_000);
    expect(answer.headers.get("retry-after")).toBe("2");
    const body = (await answer.json()) as { error: { code: string; outcome: string; message: string } };
    expect(body.error).toMatchObject({ code: "DATABASE_UNAVAILABLE", outcome: "unknown" });
    expect(body.error.message).toMatch(/retry it with the same idempotency key/);

    // The database answers again: the held-up spend commits after all, and the retry changes nothing twice.
    await blocked;
    const retried = await spend(token, "held-1");
    expect(retried.status).toBe(200);
    expect(await retried.json()).toMatchObject({ success: true, new_balance: 9 });
    expect(await balanceOf(t.db.handle.db, userId)).toBe(9);
    expect(t.logs.messages()).toContain("request deadline reached waiting on the database");
    // The held-up work finishing after its answer went out is not an error of its own.
    expect(t.logs.lines.filter((line) => Number(line.level) >= 50)).toEqual([]);
  });

  it("answers GraphQL in its own error shape, and /health at once meanwhile", async () => {
    const { token } = await fundUser(t, 10);
    const blocked = blockBalances(DEADLINE_MS + 2_000);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const health = Date.now();
    expect((await fetch(`${t.url}/health`)).status).toBe(200);
    expect(Date.now() - health).toBeLessThan(500);
    if (driverName === "pglite") {
      // The embedded database runs one statement at a time: /ready's probe waits too, and says so in time.
      const ready = Date.now();
      expect((await fetch(`${t.url}/ready`)).status).toBe(503);
      expect(Date.now() - ready).toBeLessThan(2_000);
    }
    const result = await t.gql("{ balance { balance } }", {}, token);
    expect(result.errors?.[0]?.extensions).toMatchObject({
      code: "DATABASE_UNAVAILABLE",
      outcome: "unknown",
    });
    await blocked;
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(t.logs.lines.filter((line) => Number(line.level) >= 50)).toEqual([]);
    expect((await t.gql("{ balance { balance } }", {}, token)).data).toEqual({ balance: { balance: 10 } });
  });
});
