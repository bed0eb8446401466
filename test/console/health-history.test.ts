import { describe, expect, it } from "vitest";
import { createHealthHistory } from "../../src/console/health-history.js";
import { createMetrics } from "../../src/metrics.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("the console's health history", () => {
  it("keeps one point per interval for the window, each the difference over its interval", async () => {
    const metrics = createMetrics();
    // Counts from before the history started are not the first interval's.
    metrics.webhookOutcomes.inc({ outcome: "failed" }, 5);
    const history = createHealthHistory(metrics, { intervalMs: 100, windowMs: 400 });
    history.start();
    try {
      await sleep(50);
      metrics.webhookOutcomes.inc({ outcome: "credited" }, 3);
      metrics.webhookOutcomes.inc({ outcome: "unmapped" }, 1);
      metrics.webhookDuration.observe(0.02);
      metrics.webhookDuration.observe(0.04);
      metrics.spends.inc({ outcome: "success" }, 3);
      metrics.spends.inc({ outcome: "insufficient" }, 1);
      history.recordResponse(10);
      history.recordResponse(30);
      const now = (await history.points()).at(-1);
      expect(now).toMatchObject({
        purchaseSuccessRate: 0.75,
        purchases: 4,
        apiMeanMs: 20,
        apiMaxMs: 30,
        apiRequests: 2,
        failedSpendRate: 0.25,
        spends: 4,
        webhooks: 2,
      });
      expect(now?.webhookMeanMs).toBeCloseTo(30, 5);
      // On a loaded machine timers run late: wait for the window to fill, by points not by time.
      const deadline = Date.now() + 10_000;
      while ((await history.points()).length < 5 && Date.now() < deadline) await sleep(50);
      await sleep(300);
      const points = await history.points();
      // Four kept (400 ms of 100 ms intervals) and the one still running; quiet intervals have no rates.
      expect(points).toHaveLength(5);
      expect(points.at(-1)).toMatchObject({ purchaseSuccessRate: null, apiMeanMs: null, purchases: 0 });
    } finally {
      history.stop();
    }
  });
});
