import { builder } from "../../graphql/builder.js";
import { BalanceRef, enumOf, TokenTransactionRef } from "../ledger/ledger.graphql-types.js";
import {
  EXPIRING_DESCRIPTION,
  ExpiringTokensRef,
  expiringFor,
  NEXT_EXPIRY_DESCRIPTION,
} from "../ledger/ledger.lots.graphql-types.js";
import { getEntry } from "../ledger/ledger.queries.js";
import { BALANCE_CHANGE_REASONS, type BalanceChange, reasonOf } from "./balance-change.js";

const BalanceChangeReasonEnum = enumOf(
  "BalanceChangeReason",
  "Why a balance changed; transaction.kind names the entry's own kind.",
  BALANCE_CHANGE_REASONS,
  {
    SNAPSHOT: "Not a change: the balance as it is now (the first event, or a re-sync).",
    PURCHASE: "A store purchase or a subscription period credited its tokens.",
    SPEND: "The user spent tokens.",
    GRANT: "Tokens were given: an operator's grant, or a balance carried over from a legacy store.",
    ADJUSTMENT: "An operator corrected the balance, or moved tokens between users.",
    REFUND: "A refunded purchase took its tokens back.",
    REVERSAL: "A reversed refund gave back what the refund took.",
    EXPIRE: "Tokens reached their end unused (a subscription period ended) and were written off.",
    HOLD: "A hold set tokens aside: held rose, available fell, the balance stayed (no transaction).",
    CAPTURE:
      "A hold was captured: its SPEND transaction took what the job used, the rest of the hold went back.",
    RELEASE: "A hold was released: its tokens went back to available (no transaction).",
    HOLD_EXPIRED: "A hold reached its TTL uncaptured: its tokens went back to available (no transaction).",
  },
);

export const BalanceChangeRef = builder.objectRef<BalanceChange>("BalanceChange").implement({
  description: "The caller's balance after a committed change, or a snapshot (delta 0, no transaction).",
  fields: (t) => ({
    balance: t.exposeInt("balance", { description: "The balance after the change." }),
    held: t.exposeInt("held", { description: "Tokens set aside by holds after the change." }),
    available: t.int({
      description: "Tokens a spend can use after the change: balance less held.",
      resolve: (change) => change.balance - change.held,
    }),
    delta: t.exposeInt("delta", {
      description:
        "How much the change moved the balance; 0 for a snapshot and for HOLD, RELEASE, HOLD_EXPIRED.",
    }),
    holdId: t.exposeID("holdId", {
      nullable: true,
      description: "The hold behind a HOLD, CAPTURE, RELEASE or HOLD_EXPIRED change; null otherwise.",
    }),
    reason: t.field({
      type: BalanceChangeReasonEnum,
      description:
        "Why the balance changed: SPEND, PURCHASE, EXPIRE, HOLD, CAPTURE, ...; SNAPSHOT for a snapshot.",
      resolve: async (change, _args, context) => {
        if (change.kind) return reasonOf(change.kind, change.holdId);
        if (change.entryId === null) return "SNAPSHOT";
        // A notification from a money function older than lots names no kind: the entry does.
        const entry = await getEntry(context.db, change.userId, change.entryId);
        return entry ? reasonOf(entry.kind) : "SNAPSHOT";
      },
    }),
    version: t.exposeInt("version", {
      description:
        "The balance version; a jump of more than one means events were missed: re-read the balance.",
    }),
    lastUpdated: t.expose("lastUpdated", { type: "DateTime", description: "When the balance last changed." }),
    expiring: t.field({
      type: [ExpiringTokensRef],
      description: `${EXPIRING_DESCRIPTION} Read when the event was delivered.`,
      resolve: (change, _args, context) => expiringFor(change, context.db),
    }),
    nextExpiry: t.field({
      type: ExpiringTokensRef,
      nullable: true,
      description: NEXT_EXPIRY_DESCRIPTION,
      resolve: async (change, _args, context) => (await expiringFor(change, context.db))[0] ?? null,
    }),
    current: t.field({
      type: BalanceRef,
      description:
        "The balance after the change as the Balance object, with the same id as Query.balance, so normalized caches update it.",
      resolve: ({ userId, balance, held, version, lastUpdated, expiring }) => ({
        userId,
        balance,
        held,
        version,
        lastUpdated,
        expiring,
      }),
    }),
    transaction: t.field({
      type: TokenTransactionRef,
      nullable: true,
      description:
        "The ledger entry behind the change; null for a snapshot and for HOLD, RELEASE, HOLD_EXPIRED (no entry).",
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
