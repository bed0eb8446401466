import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

export const root = fileURLToPath(new URL("../../..", import.meta.url));

/** Starts a server script in a process of its own and resolves once it logs the port it listens on. */
export async function startProcess(
  args: string[],
  env: Record<string, string>,
): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ["--import", "tsx", ...args], {
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
