import { h, time } from "./dom.js";

/** A user's lots as the console shows them: which grants the balance is made of, and when each ends. */
export interface LotRow {
  id: string;
  source: string;
  sourceRef: string | null;
  productId: string | null;
  granted: number;
  remaining: number;
  expired: number;
  expiresAt: string | null;
}

export const LOT_FIELDS = "id source sourceRef productId granted remaining expired expiresAt";

export function lotsView(lots: LotRow[]): HTMLElement {
  if (lots.length === 0) return h("p", { class: "muted" }, "No lots yet.");
  const heads = ["#", "Source", "Store transaction", "Product", "Granted", "Left", "Expired", "Ends"];
  return h(
    "table",
    {},
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        heads.map((head) => h("th", {}, head)),
      ),
    ),
    h(
      "tbody",
      {},
      lots.map((lot) =>
        h(
          "tr",
          { "data-source": lot.source },
          h("td", { class: "num" }, lot.id),
          h("td", {}, h("span", { class: "badge" }, lot.source)),
          h("td", {}, lot.sourceRef ? h("code", {}, lot.sourceRef) : ""),
          h("td", {}, lot.productId ?? ""),
          h("td", { class: "num" }, lot.granted),
          h("td", { class: "num" }, lot.remaining),
          h("td", { class: "num" }, lot.expired),
          h("td", {}, lot.expiresAt ? time(lot.expiresAt) : "never"),
        ),
      ),
    ),
  );
}
