import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { LoadResult, LoadSpec } from "./load.js";

export const root = fileURLToPath(new URL("../../..", import.meta.url));

/** Starts a server script in a process of its own and resolves once it logs the port it listens on. */
export async function startProcess(
  args: string[],
  env: Record<string, string>,
): Promise<{ child: ChildProcess; port: number }> {
  // token-ledger runs as `npm start` runs it, from the esbuild bundle (src/scripts/start.mjs);
  // BENCH_PROFILE loads the sources through tsx instead, so the profiler hook can wrap them.
  // BENCH_NODE_ARGS (such as "--cpu-prof --cpu-prof-dir=/tmp/prof") go to token-ledger's servers.
  const ledger = args[0] === "src/main.ts";
  const extra = ledger ? (process.env.BENCH_NODE_ARGS ?? "").split(" ").filter(Boolean) : [];
  const entry = !ledger
    ? ["--import", "tsx", ...args]
    : process.env.BENCH_PROFILE
      ? ["--import", "tsx", "--import", "./src/scripts/bench/profiler-hook.ts", ...args]
      : ["--enable-source-maps", "src/scripts/start.mjs", ...args.slice(1)];
  const child = spawn(process.execPath, [...extra, ...entry], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let output = "";
  return new Promise((resolve, reject) => {
    // The data listener stays: it keeps draining stdout so log lines never block the server.
    child.stdout?.on("data", (chunk: Buffer) => {
      if (output === null) return;
      output += chunk.toString();
      const match = /"port":(\d+)/.exec(output);
      if (match) {
        output = null as unknown as string;
        resolve({ child, port: Number(match[1]) });
      }
    });
    child.once("exit", () => reject(new Error(`${args.join(" ")} exited before listening`)));
  });
}

export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill("SIGTERM");
  await once(child, "exit");
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux; clock ticks of 1/100 s). */
export function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

/** CPU seconds used so far by every PostgreSQL server process on this machine (its backends included). */
export function postgresCpuSeconds(): number {
  let total = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() === "postgres")
        total += cpuSeconds(Number(entry));
    } catch {
      // The process ended while we read.
    }
  }
  return total;
}

/** Runs one load in the load generator's own process and returns what it measured. */
export async function runLoadProcess(spec: LoadSpec): Promise<LoadResult> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/scripts/bench/load.ts"], {
    cwd: root,
    env: { ...process.env, BENCH_LOAD: JSON.stringify(spec) },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const [code] = (await once(child, "exit")) as [number];
  if (code !== 0) throw new Error(`the load generator failed (${spec.scenario})`);
  return JSON.parse(output.trim().split("\n").at(-1) as string) as LoadResult;
}
