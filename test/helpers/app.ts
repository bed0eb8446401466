import { randomUUID } from "node:crypto";
import { Writable } from "node:stream";
import { type App, buildApp } from "../../src/app.js";
import { signDevToken } from "../../src/auth/jwt.js";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/logger.js";
import { openTestDatabase, type TestDatabase } from "./database.js";
import { JWT_SECRET, TEST_ENV } from "./env.js";
import { useStarted } from "./fixture.js";

export { JWT_SECRET, WEBHOOK_SECRET } from "./env.js";
export { useStarted } from "./fixture.js";

/** Every log line the app wrote, parsed, so tests can check what was (and was not) logged. */
export class LogCapture extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  readonly raw: string[] = [];
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    for (const line of chunk.toString().split("\n").filter(Boolean)) {
      this.raw.push(line);
      this.lines.push(JSON.parse(line) as Record<string, unknown>);
    }
    done();
  }
  messages(): string[] {
    return this.lines.map((line) => String(line.msg));
  }
}

export interface TestApp {
  readonly app: App;
  readonly db: TestDatabase;
  readonly url: string;
  readonly logs: LogCapture;
  token(userId: string, options?: { admin?: boolean; expiresIn?: string | number }): Promise<string>;
  gql<T = Record<string, unknown>>(
    query: string,
    variables?: Record<string, unknown>,
    token?: string,
  ): Promise<{ data?: T; errors?: { message: string; extensions?: { code?: string } }[] }>;
  close(): Promise<void>;
}

/** A signed test token and a GraphQL call to the server at `url`: how tests talk to any server. */
export function clientOf(url: string): Pick<TestApp, "token" | "gql"> {
  return {
    token: (userId, options = {}) =>
      signDevToken({
        secret: JWT_SECRET,
        userId,
        admin: options.admin,
        expiresIn: options.expiresIn ?? "1h",
      }),
    async gql(query, variables, token) {
      const response = await fetch(`${url}/graphql`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: JSON.stringify({ query, variables }),
      });
      return (await response.json()) as never;
    },
  };
}

export function newUserId(prefix = "user"): string {
  return `${prefix}-${randomUUID()}`;
}

export async function startTestApp(
  env: Record<string, string> = {},
  existing?: TestDatabase,
): Promise<TestApp> {
  const db = existing ?? (await openTestDatabase());
  const config = loadConfig({ ...TEST_ENV, ...env });
  const logs = new LogCapture();
  const app = buildApp({ config, database: db.handle, logger: createLogger(config.logLevel, logs) });
  const port = await app.start(0, "127.0.0.1");
  const url = `http://127.0.0.1:${port}`;
  return {
    app,
    db,
    url,
    logs,
    ...clientOf(url),
    async close() {
      await app.stop(2000);
      if (!existing) await db.close();
    },
  };
}

/**
 * Starts a test app before the file's tests and closes it after them. The returned object stands for
 * the app once it has started (it forwards to it), so tests use it like the app itself.
 */
export function useTestApp(env: Record<string, string> = {}, database?: () => TestDatabase): TestApp {
  return useStarted("the test app", () => startTestApp(env, database?.()));
}
