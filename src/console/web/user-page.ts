import { gql, live } from "./api.js";
import { DELIVERY_FIELDS, type DeliveryRow, deliveryTable } from "./deliveries-table.js";
import { h, notice, replace, signed, time } from "./dom.js";
import { LOT_FIELDS, type LotRow, lotsView } from "./lots-table.js";
import type { PageContext } from "./page.js";

interface Entry {
  entryId: number;
  amount: number;
  balanceAfter: number;
  kind: string;
  createdAt: string;
  lineage: { story: string; actor: string | null; eventId: string | null; shortfallTokens: number | null };
}

const USER_QUERY = `query ConsoleUser($userId: ID!) {
  userBalance(userId: $userId) { balance version lastUpdated }
  userLots(userId: $userId, includeEmpty: true, first: 50) { ${LOT_FIELDS} }
  userTransactions(userId: $userId, first: 100) { entryId amount balanceAfter kind createdAt
    lineage { story actor eventId shortfallTokens } }
  webhookDeliveries(userId: $userId, first: 100) { ${DELIVERY_FIELDS} } }`;

const OLDER_QUERY = `query ConsoleOlder($userId: ID!, $older: Int) {
  userTransactions(userId: $userId, first: 100, olderThanEntry: $older) { entryId amount balanceAfter kind
    createdAt lineage { story actor eventId shortfallTokens } } }`;

const LIVE = `subscription ConsoleBalance($userId: ID!) { userBalanceChanged(userId: $userId) { balance version } }`;

/** A user's page: the balance (live), its lots, the ledger with each entry's story, and their deliveries. */
export function userPage({ access, main }: PageContext, userId: string): () => void {
  const balance = h("span", { class: "balance", id: "balance", "aria-live": "polite" }, "…");
  const liveMark = h("span", { class: "live" });
  const ledger = h("div", { id: "ledger" });
  const lots = h("div", { id: "lots" });
  const deliveries = h("div", { id: "user-deliveries" });
  const message = h("div");
  let shown: Entry[] = [];
  const showLedger = (more: boolean) => {
    const older = h(
      "button",
      { type: "button", class: "secondary", onclick: () => void loadOlder() },
      "Older entries",
    );
    replace(ledger, ledgerTable(shown), more ? older : null);
  };
  const loadOlder = async () => {
    const last = shown.at(-1)?.entryId;
    const data = await gql<{ userTransactions: Entry[] }>(OLDER_QUERY, { userId, older: last });
    shown = [...shown, ...data.userTransactions];
    showLedger(data.userTransactions.length === 100);
  };
  const load = async () => {
    try {
      const data = await gql<{
        userBalance: { balance: number; version: number };
        userLots: LotRow[];
        userTransactions: Entry[];
        webhookDeliveries: DeliveryRow[];
      }>(USER_QUERY, { userId });
      balance.textContent = String(data.userBalance.balance);
      replace(lots, lotsView(data.userLots));
      shown = data.userTransactions;
      showLedger(shown.length === 100);
      replace(deliveries, deliveryTable(data.webhookDeliveries, false));
    } catch (error) {
      replace(message, notice(String(error), true));
    }
  };
  replace(
    main,
    h("h1", {}, "User ", h("code", {}, userId)),
    message,
    h(
      "div",
      { class: "row" },
      h("div", {}, h("div", { class: "muted" }, "Balance"), balance, liveMark),
      access === "admin"
        ? grantForm(userId, load)
        : h("p", { class: "muted" }, "Read-only: grants and adjustments need tokens:admin."),
    ),
    h("h2", {}, "Lots"),
    lots,
    h("h2", {}, "Ledger"),
    ledger,
    h("h2", {}, "Webhook deliveries"),
    deliveries,
  );
  void load();
  // Changes that arrive while the page reloads are read by one more reload, not by one each.
  let reloading = false;
  let again = false;
  const reload = async () => {
    if (reloading) {
      again = true;
      return;
    }
    reloading = true;
    do {
      again = false;
      await load();
    } while (again);
    reloading = false;
  };
  const stop = live().subscribe<{ userBalanceChanged: { balance: number } }>(
    { query: LIVE, variables: { userId } },
    {
      next: ({ data }) => {
        if (!data) return;
        balance.textContent = String(data.userBalanceChanged.balance);
        liveMark.textContent = "● live";
        void reload();
      },
      error: () => {
        liveMark.textContent = "not live";
      },
      complete: () => undefined,
    },
  );
  return stop;
}

function ledgerTable(entries: Entry[]): HTMLElement {
  if (entries.length === 0) return h("p", { class: "muted" }, "No entries yet.");
  return h(
    "table",
    {},
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", {}, "#"),
        h("th", {}, "When"),
        h("th", {}, "Kind"),
        h("th", {}, "Amount"),
        h("th", {}, "Balance after"),
        h("th", {}, "Story"),
        h("th", {}, "By"),
      ),
    ),
    h(
      "tbody",
      {},
      entries.map((entry) =>
        h(
          "tr",
          { "data-kind": entry.kind },
          h("td", { class: "num" }, entry.entryId),
          h("td", {}, time(entry.createdAt)),
          h("td", {}, h("span", { class: "badge" }, entry.kind)),
          h("td", { class: "num" }, signed(entry.amount)),
          h("td", { class: "num" }, entry.balanceAfter),
          h(
            "td",
            { class: "story" },
            entry.lineage.story,
            entry.lineage.eventId ? h("div", { class: "muted" }, `event ${entry.lineage.eventId}`) : null,
          ),
          h("td", {}, entry.lineage.actor ?? ""),
        ),
      ),
    ),
  );
}

const GRANT = `mutation ConsoleGrant($input: GrantTokensInput!) { grantTokens(input: $input) { success message } }`;
const ADJUST = `mutation ConsoleAdjust($input: AdjustTokensInput!) { adjustTokens(input: $input) { success message } }`;

function grantForm(userId: string, reload: () => Promise<void>): HTMLElement {
  const amount = h("input", {
    name: "amount",
    type: "number",
    step: 1,
    required: true,
    size: 8,
  }) as HTMLInputElement;
  const reason = h("input", {
    name: "reason",
    required: true,
    minlength: 1,
    maxlength: 500,
    size: 36,
  }) as HTMLInputElement;
  const kind = h(
    "select",
    { name: "kind" },
    h("option", { value: "grant" }, "Grant (credit)"),
    h("option", { value: "adjust" }, "Adjust (signed)"),
  ) as HTMLSelectElement;
  const status = h("div", { "aria-live": "polite" });
  const fresh = () => {
    key = crypto.randomUUID();
  };
  // One key per intended change: a double submit or a retry never writes twice.
  let key = crypto.randomUUID();
  for (const field of [amount, reason, kind]) field.addEventListener("input", fresh);
  const form = h(
    "form",
    {
      class: "inline",
      "aria-label": "Grant or adjust",
      onsubmit: async (event) => {
        event.preventDefault();
        const input = {
          userId,
          amount: Number(amount.value),
          reason: reason.value.trim(),
          idempotencyKey: key,
        };
        const grant = kind.value === "grant";
        try {
          const data = await gql<Record<string, { success: boolean; message: string }>>(
            grant ? GRANT : ADJUST,
            { input },
          );
          const result = (grant ? data.grantTokens : data.adjustTokens) as {
            success: boolean;
            message: string;
          };
          replace(status, notice(result.message, !result.success));
          if (result.success) {
            fresh();
            amount.value = "";
            reason.value = "";
            await reload();
          }
        } catch (error) {
          replace(status, notice(String(error), true));
        }
      },
    },
    h("label", {}, "Action", kind),
    h("label", {}, "Tokens", amount),
    h("label", {}, "Reason (required, recorded with your id)", reason),
    h("button", { type: "submit" }, "Apply"),
  );
  return h("div", {}, form, status);
}
