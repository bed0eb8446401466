import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { root } from "./processes.js";

async function serverMemory(baseUrl: string): Promise<{ rss: number; heap: number }> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const read = (name: string) => Number(new RegExp(`^${name} (\\S+)`, "m").exec(text)?.[1] ?? Number.NaN);
  return { rss: read("process_resident_memory_bytes"), heap: read("nodejs_heap_size_used_bytes") };
}

/** Holds `count` subscribers from a separate process and reports memory and spend-to-event latency. */
export async function subscribers(baseUrl: string, count: number, jwtSecret: string): Promise<void> {
  const before = await serverMemory(baseUrl);
  const child = spawn(process.execPath, ["--import", "tsx", "src/scripts/bench/subscribers.ts"], {
    cwd: root,
    env: { ...process.env, SERVER_URL: baseUrl, JWT_SECRET: jwtSecret, COUNT: String(count), SAMPLES: "300" },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  for await (const line of lines) {
    const message = JSON.parse(line) as Record<string, unknown>;
    if (message.phase === "error") throw new Error(String(message.message));
    if (message.phase === "connected") {
      (global as { gc?: () => void }).gc?.();
      await new Promise((resolve) => setTimeout(resolve, 2000));
      const after = await serverMemory(baseUrl);
      const perRss = (after.rss - before.rss) / count / 1024;
      const perHeap = (after.heap - before.heap) / count / 1024;
      console.log(
        `${String(count).padStart(6)} subscribers held (connected in ${Number(message.seconds).toFixed(1)} s): server RSS +${((after.rss - before.rss) / 1048576).toFixed(1)} MB = ${perRss.toFixed(1)} KB/subscriber, heap +${perHeap.toFixed(1)} KB/subscriber`,
      );
      child.stdin?.write("go\n");
    }
    if (message.phase === "latency") {
      const request = message.requestToEvent as { p50: number; p99: number };
      const response = message.responseToEvent as { p50: number; p99: number };
      console.log(
        `${String(count).padStart(6)} subscribers: spend request -> pushed event p50 ${request.p50} ms, p99 ${request.p99} ms; spend response -> pushed event p50 ${response.p50} ms, p99 ${response.p99} ms (${message.samples} samples)`,
      );
    }
  }
  if (child.exitCode === null) await once(child, "exit");
}
