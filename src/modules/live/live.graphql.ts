import { builder } from "../../graphql/builder.js";
import { BalanceRef, TokenTransactionRef } from "../ledger/ledger.graphql-types.js";
import { getEntry } from "../ledger/ledger.queries.js";
import type { BalanceChange } from "./balance-hub.js";

export const BalanceChangeRef = builder.objectRef<BalanceChange>("BalanceChange").implement({
  description: "The caller's balance after a committed change, or a snapshot (delta 0, no transaction).",
  fields: (t) => ({
    balance: t.exposeInt("balance", { description: "The balance after the change." }),
    delta: t.exposeInt("delta", { description: "How much the change moved the balance; 0 for a snapshot." }),
    version: t.exposeInt("version", {
      description:
        "The balance version; a jump of more than one means events were missed: re-read the balance.",
    }),
    lastUpdated: t.expose("lastUpdated", { type: "DateTime", description: "When the balance last changed." }),
    current: t.field({
      type: BalanceRef,
      description:
        "The balance after the change as the Balance object, with the same id as Query.balance, so normalized caches update it.",
      resolve: ({ userId, balance, version, lastUpdated }) => ({ userId, balance, version, lastUpdated }),
    }),
    transaction: t.field({
      type: TokenTransactionRef,
      nullable: true,
      description: "The ledger entry behind the change; null for a snapshot.",
      resolve: (change, _args, context) =>
        change.entryId === null ? null : getEntry(context.db, change.userId, change.entryId),
    }),
  }),
});

builder.subscriptionType({ description: "Live updates for the authenticated caller." });

builder.subscriptionFields((t) => ({
  balanceChanged: t.withAuth({ user: true }).field({
    type: BalanceChangeRef,
    description:
      "The caller's current balance first, then one event per committed change of it, in version order.",
    subscribe: (_root, _args, context) => context.hub.subscribe(context.viewer.userId),
    resolve: (change) => change,
  }),
}));
