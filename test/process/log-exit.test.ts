import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { collectOutput, projectRoot } from "../helpers/process.js";

/**
 * Runs the fixture behind a log reader that starts reading 300 ms after the fixture's stdout pipe is
 * full (a collector that reads slowly); resolves with the exit code and what the reader got.
 */
async function runWithSlowReader(mode: "plain" | "logged"): Promise<{ code: number | null; output: string }> {
  const flag = join(await mkdtemp(join(tmpdir(), "tl-log-exit-")), "full");
  const fixture = `"${process.execPath}" --import tsx test/fixtures/process/log-then-exit.ts ${mode}`;
  const reader = `while [ ! -e "${flag}" ]; do sleep 0.02; done; sleep 0.3; cat`;
  const child = spawn("sh", ["-c", `${fixture} | (${reader})`], {
    cwd: projectRoot,
    env: { ...process.env, FULL_FLAG: flag },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output = collectOutput(child);
  const [code] = (await once(child, "close")) as [number | null];
  return { code, output: output() };
}

describe("exiting after the last log line (src/logger.ts exitWhenLogged)", () => {
  it("writes the last line although the log reader had let stdout's pipe fill up", async () => {
    const { code, output } = await runWithSlowReader("logged");
    expect(code).toBe(0);
    expect(output).toContain("stopped cleanly");
  });

  it("the pipe really was full: a bare process.exit loses that line (why the server's stop waits)", async () => {
    const { code, output } = await runWithSlowReader("plain");
    expect(code).toBe(0);
    expect(output).not.toContain("stopped cleanly");
  });
});
