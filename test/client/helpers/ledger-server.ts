import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import { signDevToken } from "../../../src/auth/jwt.js";
import { JWT_SECRET, newUserId, useStarted } from "../../helpers/app.js";
import { openTestDatabase, type TestDatabase } from "../../helpers/database.js";
import { type ServerProcess, startServerProcess } from "../../helpers/process.js";
import { deliver, fixture } from "../../helpers/revenuecat.js";

/**
 * token-ledger as a real process for the client tests, on a PGlite folder of its own or (with
 * TEST_DATABASE_URL) a fresh PostgreSQL database. A separate process keeps the server apart from the
 * test's environment (happy-dom replaces globals such as fetch) and lets a test restart it.
 */
export interface LedgerServer {
  /** http://127.0.0.1:<port> */
  readonly url: string;
  /** The GraphQL endpoint the client is given. */
  readonly graphqlUrl: string;
  token(userId: string, expiresIn?: string | number): Promise<string>;
  /** A new user granted `amount` tokens by an admin, and a token for them. */
  fundUser(amount: number): Promise<{ userId: string; token: string }>;
  /** Delivers RevenueCat's documented NON_RENEWING_PURCHASE for the user; returns its transaction id. */
  purchase(userId: string, productId?: string): Promise<string>;
  /** Stops the process (SIGTERM: sockets get 1001) and starts it again on the same port and data. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startLedgerServer(): Promise<LedgerServer> {
  const database: TestDatabase | undefined = process.env.TEST_DATABASE_URL
    ? await openTestDatabase()
    : undefined;
  const dataDir = database ? undefined : await mkdtemp(join(tmpdir(), "tl-client-"));
  const env = { DATABASE_URL: database?.url, DATA_DIR: dataDir };
  let child: ServerProcess = await startServerProcess(env);
  const port = new URL(child.url).port;
  const url = child.url;
  const graphqlUrl = `${url}/graphql`;
  const token = (userId: string, expiresIn: string | number = "1h") =>
    signDevToken({ secret: JWT_SECRET, userId, expiresIn });

  return {
    url,
    graphqlUrl,
    token,
    async fundUser(amount) {
      const userId = newUserId();
      const admin = await signDevToken({ secret: JWT_SECRET, userId: "admin", admin: true, expiresIn: "1h" });
      const response = await fetch(graphqlUrl, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${admin}` },
        body: JSON.stringify({
          query: "mutation G($input: GrantTokensInput!) { grantTokens(input: $input) { success } }",
          variables: { input: { userId, amount, reason: "setup" } },
        }),
      });
      expect(await response.json()).toEqual({ data: { grantTokens: { success: true } } });
      return { userId, token: await token(userId) };
    },
    async purchase(userId, productId = "token_pack_small") {
      const body = fixture("NON_RENEWING_PURCHASE__rc-docs", { app_user_id: userId, product_id: productId });
      const delivered = await deliver(url, body);
      expect(delivered.body.outcome).toBe("credited");
      return String(body.event.transaction_id);
    },
    async restart() {
      expect(await child.stop()).toBe(0);
      child = await startServerProcess({ ...env, PORT: port });
    },
    async close() {
      await child.stop();
      await database?.close();
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Starts a server before the file's tests and stops it after them. */
export function useLedgerServer(): LedgerServer {
  return useStarted("the ledger server", startLedgerServer);
}
