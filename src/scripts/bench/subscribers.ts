import { createInterface } from "node:readline";
import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { signDevToken } from "../../auth/jwt.js";
import { percentile } from "./stats.js";

/**
 * The benchmark's subscriber fleet, in a process of its own so that the server's measurements are
 * not the clients' work. Opens COUNT graphql-ws connections (one user each), reports when every one
 * has its first event, waits for "go" on stdin, then times spends from request to pushed event.
 */
const serverUrl = process.env.SERVER_URL as string;
const secret = process.env.JWT_SECRET as string;
const count = Number(process.env.COUNT ?? 1000);
const samples = Number(process.env.SAMPLES ?? 300);
const prefix = process.env.USER_PREFIX ?? "bench-user";

type Waiter = { version: number; resolve: (at: number) => void };
const waiting = new Map<string, Waiter>();
const versions = new Map<string, number>();

function emit(message: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

async function connect(index: number, token: string): Promise<void> {
  const userId = `${prefix}-${index}`;
  const client = createClient({
    url: `${serverUrl.replace(/^http/, "ws")}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
    retryAttempts: 0,
  });
  await new Promise<void>((resolve, reject) => {
    client.subscribe<{ balanceChanged: { version: number } }>(
      { query: "subscription { balanceChanged { balance delta version } }" },
      {
        next: (result) => {
          const version = result.data?.balanceChanged.version ?? -1;
          const at = performance.now();
          if (!versions.has(userId)) resolve();
          versions.set(userId, version);
          const waiter = waiting.get(userId);
          if (waiter && version >= waiter.version) {
            waiting.delete(userId);
            waiter.resolve(at);
          }
        },
        error: reject,
        complete: () => undefined,
      },
    );
  });
}

async function main(): Promise<void> {
  const started = performance.now();
  const tokens = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      signDevToken({ secret, userId: `${prefix}-${i}`, expiresIn: "2h" }),
    ),
  );
  for (let i = 0; i < count; i += 250) {
    await Promise.all(tokens.slice(i, i + 250).map((token, j) => connect(i + j, token)));
  }
  emit({ phase: "connected", count, seconds: (performance.now() - started) / 1000 });

  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) if (line.trim() === "go") break;

  const fromRequest: number[] = [];
  const fromResponse: number[] = [];
  for (let i = 0; i < samples; i += 1) {
    const index = Math.floor(Math.random() * count);
    const userId = `${prefix}-${index}`;
    const expected = (versions.get(userId) ?? 0) + 1;
    const pushed = new Promise<number>((resolve) => waiting.set(userId, { version: expected, resolve }));
    const sent = performance.now();
    const response = await fetch(`${serverUrl}/api/v1/tokens/spend`, {
      method: "POST",
      headers: { authorization: `Bearer ${tokens[index]}`, "content-type": "application/json" },
      body: JSON.stringify({ amount: 1, description: "latency sample" }),
    });
    const answered = performance.now();
    if (response.status !== 200) throw new Error(`spend failed: ${response.status} ${await response.text()}`);
    const at = await pushed;
    fromRequest.push(at - sent);
    fromResponse.push(at - answered);
  }
  emit({
    phase: "latency",
    samples,
    requestToEvent: { p50: percentile(fromRequest, 50), p99: percentile(fromRequest, 99) },
    responseToEvent: { p50: percentile(fromResponse, 50), p99: percentile(fromResponse, 99) },
  });
  process.exit(0);
}

main().catch((error: unknown) => {
  emit({ phase: "error", message: error instanceof Error ? error.message : String(error) });
  process.exit(1);
});
