import { randomUUID } from "node:crypto";
import { Writable } from "node:stream";
import { afterAll, beforeAll } from "vitest";
import { type App, buildApp } from "../../src/app.js";
import { signDevToken } from "../../src/auth/jwt.js";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/logger.js";
import { openTestDatabase, type TestDatabase } from "./database.js";

export const JWT_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789";
export const WEBHOOK_SECRET = "rc-webhook-secret-for-tests-0123";

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
  const config = loadConfig({
    NODE_ENV: "test",
    JWT_SECRET,
    REVENUECAT_WEBHOOK_SECRET: WEBHOOK_SECRET,
    LOG_LEVEL: "info",
    // Generous limits: the rate-limit tests set their own.
    RATE_LIMIT_SPEND_PER_MINUTE: "1000000",
    RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: "1000000",
    // A loaded two-core CI machine can keep a healthy request waiting seconds under the suite's
    // concurrency tests; the deadline tests set their own.
    DATABASE_DEADLINE_MS: "30000",
    ...env,
  });
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

/**
 * Starts something before the file's tests and closes it after them; the returned object forwards
 * to it once started, so a test file can hold it from the top.
 */
export function useStarted<T extends { close(): Promise<void> }>(name: string, start: () => Promise<T>): T {
  let instance: T | undefined;
  beforeAll(async () => {
    instance = await start();
  });
  afterAll(async () => {
    await instance?.close();
  });
  return new Proxy({} as T, {
    get(_target, key) {
      if (!instance) throw new Error(`${name} is used before beforeAll started it`);
      return Reflect.get(instance, key);
    },
  });
}
