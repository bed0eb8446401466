import { once } from "node:events";
import { mkdtemp } from "node:fs/promises";
import { get } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { signDevToken } from "../../src/auth/jwt.js";
import { JWT_SECRET } from "../helpers/app.js";
import { driverName, openTestDatabase, serverUrl, type TestDatabase } from "../helpers/database.js";
import { type ServerProcess, startServerProcess } from "../helpers/process.js";

/**
 * A load balancer as most are set up: it polls each instance's /ready and sends each request to one
 * that answered 200, without retrying a request that failed. Requests go straight from here to the
 * chosen instance, so every refused or reset connection is counted.
 */
class Balancer {
  private readonly ready = new Set<string>();
  private readonly backends = new Set<string>();
  private next = 0;
  private readonly poller: NodeJS.Timeout;

  constructor(private readonly pollMs: number) {
    this.poller = setInterval(() => void this.poll(), pollMs);
  }

  add(url: string): void {
    this.backends.add(url);
  }

  remove(url: string): void {
    this.backends.delete(url);
    this.ready.delete(url);
  }

  async poll(): Promise<void> {
    await Promise.all(
      [...this.backends].map(async (url) => {
        const ok = await fetch(`${url}/ready`, { signal: AbortSignal.timeout(this.pollMs) }).then(
          (response) => response.status === 200,
          () => false,
        );
        if (ok && this.backends.has(url)) this.ready.add(url);
        else this.ready.delete(url);
      }),
    );
  }

  pick(): string | undefined {
    const ready = [...this.ready];
    this.next += 1;
    return ready[this.next % ready.length];
  }

  close(): void {
    clearInterval(this.poller);
  }
}

/** One request on a connection of its own, as a client arriving through a load balancer makes. */
function readBalance(url: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = get(
      `${url}/api/v1/tokens/balance`,
      { agent: false, headers: { authorization: `Bearer ${token}` } },
      (response) => {
        response.resume();
        response.on("end", () => resolve(response.statusCode ?? 0));
        response.on("error", reject);
      },
    );
    request.on("error", reject);
  });
}

const databases: TestDatabase[] = [];
afterAll(async () => {
  for (const database of databases) await database.close();
});

describe(`draining on SIGTERM on ${driverName}`, () => {
  it("a restart behind a load balancer following /ready refuses no connection at 30 requests/s", async () => {
    const database = serverUrl ? await openTestDatabase() : undefined;
    if (database) databases.push(database);
    // On PGlite each instance has its own folder (one process per folder); the connections are the point.
    const start = async () =>
      startServerProcess({
        DATABASE_URL: database?.url,
        DATA_DIR: await mkdtemp(join(tmpdir(), "tl-drain-")),
        SHUTDOWN_DRAIN_MS: "3000",
      });
    const [first, second] = await Promise.all([start(), start()]);
    const balancer = new Balancer(1000);
    balancer.add(first.url);
    balancer.add(second.url);
    await balancer.poll();
    const token = await signDevToken({ secret: JWT_SECRET, userId: "drain-reader", expiresIn: "1h" });

    // A WebSocket client on the instance that restarts is told to reconnect (1001), not dropped.
    const socket = new WebSocket(`${first.url.replace("http", "ws")}/graphql`, "graphql-transport-ws");
    await once(socket, "open");
    socket.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${token}` } }));
    const [ack] = (await once(socket, "message")) as [Buffer];
    expect(JSON.parse(ack.toString())).toMatchObject({ type: "connection_ack" });
    const closed = once(socket, "close") as Promise<[number, Buffer]>;

    const counts = { ok: 0, failed: 0, other: 0 };
    const failures: string[] = [];
    let sending = true;
    const client = (async () => {
      const inFlight: Promise<void>[] = [];
      while (sending) {
        const url = balancer.pick();
        if (url) {
          inFlight.push(
            readBalance(url, token).then(
              (status) => {
                if (status === 200) counts.ok += 1;
                else counts.other += 1;
              },
              (error: NodeJS.ErrnoException) => {
                counts.failed += 1;
                failures.push(error.code ?? error.message);
              },
            ),
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 33));
      }
      await Promise.all(inFlight);
    })();

    let restarted: ServerProcess | undefined;
    try {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const stopped = first.stop("SIGTERM");
      // The instance says at once that it is going: /ready 503 while it still serves.
      let readyStatus = 200;
      for (let tries = 0; tries < 100 && readyStatus === 200; tries += 1) {
        readyStatus = (await fetch(`${first.url}/ready`)).status;
        if (readyStatus === 200) await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(readyStatus).toBe(503);
      expect(await stopped).toBe(0);
      balancer.remove(first.url);
      restarted = await start();
      balancer.add(restarted.url);
      await balancer.poll();
      await new Promise((resolve) => setTimeout(resolve, 1000));
    } finally {
      sending = false;
      await client;
      balancer.close();
      await Promise.all([second.stop(), restarted?.stop()]);
    }
    const [code] = await closed;
    expect(code).toBe(1001);
    expect(first.output()).toContain("shutting down: /ready answers 503; serving 3000 ms more");
    expect({ failed: counts.failed, other: counts.other, failures }).toEqual({
      failed: 0,
      other: 0,
      failures: [],
    });
    expect(counts.ok).toBeGreaterThan(30);
  }, 240_000);
});
