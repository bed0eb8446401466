import { gql } from "./api.js";
import { h, notice, replace } from "./dom.js";
import type { PageContext } from "./page.js";

interface Point {
  at: string;
  purchaseSuccessRate: number | null;
  purchases: number;
  apiMeanMs: number | null;
  apiRequests: number;
  webhookMeanMs: number | null;
  webhooks: number;
  failedSpendRate: number | null;
  spends: number;
}

const QUERY = `query ConsoleHealth { serviceHealth { at purchaseSuccessRate purchases apiMeanMs apiRequests webhookMeanMs webhooks failedSpendRate spends } }`;

const CHARTS: {
  title: string;
  value: (p: Point) => number | null;
  format: (v: number) => string;
  count: (p: Point) => number;
  unit: string;
}[] = [
  {
    title: "Purchase success rate",
    value: (p) => p.purchaseSuccessRate,
    format: percent,
    count: (p) => p.purchases,
    unit: "purchases",
  },
  {
    title: "API response time (mean)",
    value: (p) => p.apiMeanMs,
    format: ms,
    count: (p) => p.apiRequests,
    unit: "requests",
  },
  {
    title: "Webhook processing latency (mean)",
    value: (p) => p.webhookMeanMs,
    format: ms,
    count: (p) => p.webhooks,
    unit: "deliveries",
  },
  {
    title: "Failed transaction rate (spends)",
    value: (p) => p.failedSpendRate,
    format: percent,
    count: (p) => p.spends,
    unit: "spends",
  },
];

function percent(v: number): string {
  return `${(v * 100).toFixed(1)}%`;
}
function ms(v: number): string {
  return `${v.toFixed(1)} ms`;
}

/** The four numbers of the last hour as small line charts, refreshed every 15 s. */
export function healthPage({ main }: PageContext): () => void {
  const charts = h("div", { class: "charts" });
  const load = async () => {
    try {
      const { serviceHealth } = await gql<{ serviceHealth: Point[] }>(QUERY);
      replace(
        charts,
        CHARTS.map((chart) => card(chart, serviceHealth)),
      );
    } catch (error) {
      replace(charts, notice(String(error), true));
    }
  };
  replace(main, h("h1", {}, "Health, last hour (this instance)"), charts);
  void load();
  const timer = setInterval(() => void load(), 15_000);
  return () => clearInterval(timer);
}

function card(chart: (typeof CHARTS)[number], points: Point[]): HTMLElement {
  const values = points.map(chart.value);
  const latest = [...values].reverse().find((v) => v !== null) ?? null;
  const total = points.reduce((sum, p) => sum + chart.count(p), 0);
  return h(
    "section",
    { class: "chart", "aria-label": chart.title },
    h("h2", {}, chart.title),
    h("div", { class: "now" }, latest === null ? "—" : chart.format(latest)),
    sparkline(values, chart.format === percent ? 1 : undefined),
    h("div", { class: "muted" }, `${total} ${chart.unit} in ${points.length} intervals`),
  );
}

/** A line over the intervals; rates are drawn on 0 to 100 %, times from 0 to their highest. */
function sparkline(values: (number | null)[], ceiling?: number): SVGElement {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 120 40");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  // One interval is a flat line across, not a lone invisible point.
  if (values.length === 1) values = [values[0] ?? null, values[0] ?? null];
  const known = values.filter((v): v is number => v !== null);
  const max = ceiling ?? (Math.max(...known, 0) || 1);
  const step = values.length > 1 ? 120 / (values.length - 1) : 0;
  const path = values
    .map((v, i) => (v === null ? null : `${(i * step).toFixed(1)},${(38 - (v / max) * 36).toFixed(1)}`))
    .filter(Boolean)
    .join(" ");
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", path || "0,38 120,38");
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", "#0b57d0");
  line.setAttribute("stroke-width", "1.5");
  svg.append(line);
  return svg;
}
