import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { TEST_ENV } from "./env.js";

export const projectRoot = fileURLToPath(new URL("../..", import.meta.url));

export interface ServerProcess {
  readonly child: ChildProcess;
  readonly url: string;
  /** Everything the process printed so far. */
  output(): string;
  /** What it printed on stdout alone (its JSON log lines). */
  stdout(): string;
  /** Resolves once the output holds `text` (a log line may arrive after the port's), or throws after 10 s. */
  waitForOutput(text: string): Promise<void>;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** The environment of a server process started by a test: the test defaults, any port, then `env`. */
export function serverEnv(env: Record<string, string | undefined>): NodeJS.ProcessEnv {
  return { ...process.env, ...TEST_ENV, PORT: "0", HOST: "127.0.0.1", ...env };
}

/**
 * Starts token-ledger as a real process (`node --import tsx src/main.ts`, or any command given) and
 * waits until it logs the port it listens on.
 */
export async function startServerProcess(
  env: Record<string, string | undefined>,
  command: string[] = [process.execPath, "--import", "tsx", "src/main.ts"],
): Promise<ServerProcess> {
  const [file, ...args] = command as [string, ...string[]];
  const child = spawn(file, args, {
    cwd: projectRoot,
    env: serverEnv(env),
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output = collectOutput(child);
  let stdout = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  const deadline = Date.now() + 60_000;
  let port: string | undefined;
  while (!port) {
    port = /"port":(\d+)/.exec(output())?.[1];
    if (port) break;
    if (child.exitCode !== null || Date.now() > deadline)
      throw new Error(`server did not start:\n${output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    child,
    url: `http://127.0.0.1:${port}`,
    output,
    stdout: () => stdout,
    async waitForOutput(text) {
      const until = Date.now() + 10_000;
      while (!output().includes(text)) {
        if (child.exitCode !== null || Date.now() > until)
          throw new Error(`no ${JSON.stringify(text)} in:\n${output()}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async stop(signal = "SIGTERM") {
      // A process already gone (exited, or killed by a signal) has nothing left to stop.
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      // "close", not "exit": it comes after the last of the output has been read.
      const exited = once(child, "close");
      child.kill(signal);
      const [code] = (await exited) as [number | null];
      return code;
    },
  };
}

/** Everything a child prints on stdout and stderr, as it arrives. */
export function collectOutput(child: ChildProcess): () => string {
  let output = "";
  for (const stream of [child.stdout, child.stderr]) {
    stream?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
  }
  return () => output;
}

/**
 * Starts `node --import tsx src/main.ts` with only the given environment beside the machine's own
 * (no test secrets), for a process expected to refuse to start; resolves with its exit and output.
 */
export async function runUntilExit(
  env: Record<string, string>,
): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: projectRoot,
    env: { ...process.env, NODE_ENV: "test", HOST: "127.0.0.1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output = collectOutput(child);
  const [code] = (await once(child, "exit")) as [number | null];
  return { code, output: output() };
}
