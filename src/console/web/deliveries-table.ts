import { gql } from "./api.js";
import { h, replace, time } from "./dom.js";

export interface DeliveryRow {
  eventId: string;
  type: string;
  outcome: string;
  held: boolean;
  detail: string | null;
  userId: string | null;
  appUserId: string | null;
  productId: string | null;
  receivedAt: string;
  processedAt: string | null;
  deliveries: number;
  ledgerEntryId: number | null;
}

export const DELIVERY_FIELDS =
  "eventId type outcome held detail userId appUserId productId receivedAt processedAt deliveries ledgerEntryId";

/** The deliveries table (shared with the deliveries page); `actions` adds the reprocess buttons. */
export function deliveryTable(
  rows: DeliveryRow[],
  withUser: boolean,
  action?: (row: DeliveryRow) => Node | null,
): HTMLElement {
  if (rows.length === 0) return h("p", { class: "muted" }, "No deliveries.");
  return h(
    "table",
    {},
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", {}, "Received"),
        withUser ? h("th", {}, "User") : null,
        h("th", {}, "Type"),
        h("th", {}, "Product"),
        h("th", {}, "Outcome"),
        h("th", {}, "Detail"),
        h("th", {}, "Sent"),
        h("th", {}, ""),
      ),
    ),
    h(
      "tbody",
      {},
      rows.map((row) => {
        const outcome = row.held ? "held" : row.outcome;
        const user = row.userId ?? row.appUserId;
        return h(
          "tr",
          { "data-event": row.eventId, "data-outcome": outcome },
          h("td", {}, time(row.receivedAt)),
          withUser
            ? h("td", {}, user ? h("a", { href: `#/user/${encodeURIComponent(user)}` }, user) : "")
            : null,
          h("td", {}, row.type),
          h("td", {}, row.productId ?? ""),
          h("td", {}, h("span", { class: `badge ${outcome}` }, outcome)),
          h(
            "td",
            {},
            row.detail ?? "",
            row.ledgerEntryId ? h("div", { class: "muted" }, `entry ${row.ledgerEntryId}`) : null,
          ),
          h("td", { class: "num" }, `${row.deliveries}×`),
          h("td", {}, rawBodyButton(row.eventId), action?.(row) ?? null),
        );
      }),
    ),
  );
}

function rawBodyButton(eventId: string): HTMLElement {
  const holder = h("div");
  const button = h("button", { type: "button", class: "secondary", "aria-expanded": "false" }, "Body");
  button.addEventListener("click", async () => {
    if (holder.firstChild) {
      replace(holder);
      button.setAttribute("aria-expanded", "false");
      return;
    }
    const data = await gql<{ webhookDelivery: { rawBody: string } | null }>(
      "query ConsoleDeliveryBody($eventId: String!) { webhookDelivery(eventId: $eventId) { rawBody } }",
      { eventId },
    );
    const raw = data.webhookDelivery?.rawBody ?? "";
    let pretty = raw;
    try {
      pretty = JSON.stringify(JSON.parse(raw), null, 2);
    } catch {}
    replace(holder, h("pre", { tabindex: 0 }, pretty));
    button.setAttribute("aria-expanded", "true");
  });
  return h("div", {}, button, holder);
}
