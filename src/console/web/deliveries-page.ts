import { gql } from "./api.js";
import { DELIVERY_FIELDS, type DeliveryRow, deliveryTable } from "./deliveries-table.js";
import { h, notice, replace } from "./dom.js";
import type { PageContext } from "./page.js";

const FILTERS: [string, string][] = [
  ["attention", "Needs attention (failed, unmapped, held)"],
  ["failed", "Failed"],
  ["unmapped", "Unmapped"],
  ["held", "Held by a refund"],
  ["unmatched", "Waiting (unmatched)"],
  ["credited", "Credited"],
  ["refunded", "Refunded"],
  ["", "All"],
];

const QUERY = `query ConsoleDeliveries($filter: WebhookDeliveryFilter, $userId: ID) {
  webhookDeliveries(filter: $filter, userId: $userId, first: 100) { ${DELIVERY_FIELDS} } }`;
const REPROCESS = `mutation ConsoleReprocess($eventId: String!) {
  reprocessWebhookDelivery(eventId: $eventId) { eventId outcome detail } }`;

/** Deliveries across users, filterable; unmapped and failed ones can be reprocessed (admins). */
export function deliveriesPage({ access, main }: PageContext): undefined {
  const params = new URLSearchParams(location.hash.split("?")[1] ?? "");
  const filter = h(
    "select",
    { name: "filter", id: "filter" },
    FILTERS.map(([value, label]) =>
      h("option", { value, selected: value === (params.get("filter") ?? "attention") }, label),
    ),
  ) as HTMLSelectElement;
  const user = h("input", {
    name: "userId",
    id: "filter-user",
    size: 32,
    value: params.get("userId") ?? "",
  }) as HTMLInputElement;
  const table = h("div", { id: "deliveries" });
  const status = h("div", { "aria-live": "polite" });
  const load = async () => {
    try {
      const data = await gql<{ webhookDeliveries: DeliveryRow[] }>(QUERY, {
        filter: filter.value || null,
        userId: user.value.trim() || null,
      });
      replace(
        table,
        deliveryTable(data.webhookDeliveries, true, access === "admin" ? reprocessButton : undefined),
      );
    } catch (error) {
      replace(status, notice(String(error), true));
    }
  };
  const reprocessButton = (row: DeliveryRow) => {
    if (row.outcome !== "unmapped" && row.outcome !== "failed") return null;
    return h(
      "button",
      {
        type: "button",
        onclick: async () => {
          const sure = window.confirm(
            `Reprocess ${row.type} ${row.eventId} (${row.productId ?? "no product"}) with the server's current PRODUCT_TOKEN_MAP? It credits at most once.`,
          );
          if (!sure) return;
          try {
            const data = await gql<{
              reprocessWebhookDelivery: { outcome: string; detail: string | null } | null;
            }>(REPROCESS, { eventId: row.eventId });
            const result = data.reprocessWebhookDelivery;
            replace(
              status,
              notice(
                result
                  ? `Reprocessed ${row.eventId}: ${result.outcome}${result.detail ? ` (${result.detail})` : ""}`
                  : "Not found",
              ),
            );
            await load();
          } catch (error) {
            replace(status, notice(String(error), true));
          }
        },
      },
      "Reprocess",
    );
  };
  replace(
    main,
    h("h1", {}, "Webhook deliveries"),
    h(
      "form",
      {
        class: "inline",
        onsubmit: (event) => {
          event.preventDefault();
          void load();
        },
      },
      h("label", {}, "Outcome", filter),
      h("label", {}, "User", user),
      h("button", { type: "submit" }, "Filter"),
    ),
    status,
    table,
  );
  filter.addEventListener("change", () => void load());
  void load();
  return undefined;
}
