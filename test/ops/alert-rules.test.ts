import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { projectRoot } from "../helpers/process.js";
import { skipUnlessTool, toolPath } from "../helpers/tools.js";

/**
 * The alert rules in deploy/prometheus/alerts.yml, checked and unit-tested by Prometheus' own promtool
 * (`promtool test rules` runs each alert against series shaped as the service exports them). Skipped
 * when promtool is missing, except under CI (.ci/run installs Debian's `prometheus` package).
 */

const promtool = toolPath("promtool");
const folder = join(projectRoot, "deploy", "prometheus");

function run(...args: string[]): { status: number | null; output: string } {
  const result = spawnSync(promtool ?? "promtool", args, { cwd: folder, encoding: "utf8" });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe.skipIf(skipUnlessTool("promtool", promtool))("Prometheus alert rules", () => {
  it("are valid rules (promtool check rules)", () => {
    const checked = run("check", "rules", "alerts.yml");
    expect(checked.output).toContain("SUCCESS");
    expect(checked.status).toBe(0);
  });

  it("pass their unit tests, each alert firing and staying quiet (promtool test rules)", () => {
    const tested = run("test", "rules", "alerts.test.yml");
    expect(tested.output).toContain("SUCCESS");
    expect(tested.status).toBe(0);
  });
});
