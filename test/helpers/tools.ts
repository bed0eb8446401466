import { execFileSync } from "node:child_process";

/** Where a command-line tool is on PATH, or undefined. */
export function toolPath(tool: string): string | undefined {
  try {
    return execFileSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether to skip a test that needs a tool. Under CI (CI=true) the tool must be there: a skipped
 * test would hide that the behaviour went untested, so this throws. Elsewhere a missing tool skips.
 */
export function skipUnlessTool(tool: string, path: string | undefined): boolean {
  if (path) return false;
  if (process.env.CI === "true") throw new Error(`${tool} is required under CI (CI=true) but is not on PATH`);
  return true;
}
