import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import { Redis } from "ioredis";

/** Whether `redis-server` is on PATH: the outage tests run a Redis of their own, to stop it. */
export const redisServerPath = (() => {
  try {
    return execFileSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
})();

/**
 * Under CI the tools a test needs must be there: a skipped test would hide that the behaviour went
 * untested. Elsewhere a missing tool skips the test, with the reason in its name.
 */
export function skipUnlessTool(tool: string, present: boolean): boolean {
  if (present) return false;
  if (process.env.CI === "true") throw new Error(`${tool} is required under CI (CI=true) but is not on PATH`);
  return true;
}

export interface RedisServer {
  readonly url: string;
  /** A client of the test's own, to look at the keys. */
  readonly client: Redis;
  /** Kills the server (SIGKILL: an outage, not a clean stop). */
  kill(): Promise<void>;
  /** Starts it again on the same port, empty. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A throwaway redis-server on a free port, nothing saved to disk. */
export async function startRedisServer(): Promise<RedisServer> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const run = async () => {
    child = spawn(
      redisServerPath ?? "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      { stdio: "ignore" },
    );
    const probe = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0 });
    probe.on("error", () => undefined);
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await probe.connect();
        await probe.ping();
        break;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        probe.disconnect();
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    probe.disconnect();
  };
  const kill = async () => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill("SIGKILL");
    await exited;
  };
  await run();
  const client = new Redis({ port, host: "127.0.0.1" });
  client.on("error", () => undefined);
  return {
    url: `redis://127.0.0.1:${port}`,
    client,
    kill,
    restart: run,
    async close() {
      client.disconnect();
      await kill();
    },
  };
}
