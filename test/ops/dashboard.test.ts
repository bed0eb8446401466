import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createMetrics } from "../../src/metrics.js";
import { projectRoot } from "../helpers/process.js";

/**
 * deploy/grafana/token-ledger.json is imported into Grafana by hand, so nothing else would notice a
 * panel that asks for a metric the service does not export (renamed, or never there): every series
 * its queries name must be in a real registry.
 */
interface Panel {
  title: string;
  targets: { expr: string }[];
}

const dashboard = JSON.parse(readFileSync(join(projectRoot, "deploy/grafana/token-ledger.json"), "utf8")) as {
  uid: string;
  panels: Panel[];
};

describe("the Grafana dashboard", () => {
  it("queries only metrics the service exports", async () => {
    const exported = new Set(
      (await createMetrics().registry.getMetricsAsJSON()).map((metric) => metric.name as string),
    );
    const used = new Set<string>();
    for (const panel of dashboard.panels) {
      expect(panel.targets.length, panel.title).toBeGreaterThan(0);
      for (const { expr } of panel.targets) {
        for (const [name] of expr.matchAll(/\b(?:token|graphql|nodejs|process)_[a-z0-9_]+/g)) {
          used.add(name.replace(/_(bucket|sum|count)$/, ""));
        }
      }
    }
    expect([...used].filter((name) => !exported.has(name))).toEqual([]);
    // Each of the service's own metrics has a panel.
    const own = [...exported].filter((name) => /^(token|graphql)_/.test(name));
    expect(own.filter((name) => !used.has(name))).toEqual([]);
  });
});
