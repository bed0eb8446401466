import { GraphQLError } from "graphql";
import { MAX_USER_ID_LENGTH } from "../../db/schema.js";
import { builder } from "../../graphql/builder.js";
import { BalanceRef, TokenTransactionRef } from "./ledger.graphql-types.js";
import { type EntryLineage, lineageOf } from "./ledger.lineage.js";
import { listEntries } from "./ledger.queries.js";

/** What operators read about any user's ledger (tokens:admin or tokens:read): the console's reads. */

const EntryLineageRef = builder.objectRef<EntryLineage>("EntryLineage").implement({
  description: "Where a ledger entry came from, read from what the entry records.",
  fields: (t) => ({
    story: t.exposeString("story", { description: "One sentence a person can read." }),
    actor: t.exposeString("actor", {
      nullable: true,
      description: "The operator who granted, adjusted or transferred.",
    }),
    reason: t.exposeString("reason", { nullable: true, description: "The operator's reason." }),
    eventId: t.exposeString("eventId", {
      nullable: true,
      description: "The RevenueCat event that wrote a store entry.",
    }),
    productId: t.exposeString("productId", { nullable: true, description: "The store product." }),
    store: t.exposeString("store", {
      nullable: true,
      description: "The store (APP_STORE, PLAY_STORE, ...).",
    }),
    storeTransactionId: t.exposeString("storeTransactionId", {
      nullable: true,
      description: "The store's transaction id.",
    }),
    refundedTokens: t.exposeInt("refundedTokens", {
      nullable: true,
      description: "For a refund: what the purchase had credited.",
    }),
    recoveredTokens: t.exposeInt("recoveredTokens", {
      nullable: true,
      description: "For a refund: what the balance gave back.",
    }),
    shortfallTokens: t.exposeInt("shortfallTokens", {
      nullable: true,
      description: "For a refund: tokens already spent, which could not be taken back.",
    }),
    relatedEntryId: t.exposeInt("relatedEntryId", {
      nullable: true,
      description: "The entry this one answers to (a refund's purchase, a reversal's refund).",
    }),
    legacyCustomerId: t.exposeString("legacyCustomerId", {
      nullable: true,
      description: "For a legacy import: the customer it came from.",
    }),
  }),
});

builder.objectFields(TokenTransactionRef, (t) => ({
  entryId: t.withAuth({ operator: true }).exposeInt("id", {
    description: "The entry's number in the ledger. Needs tokens:admin or tokens:read.",
  }),
  lineage: t.withAuth({ operator: true }).field({
    type: EntryLineageRef,
    description: "Where the entry came from. Needs tokens:admin or tokens:read.",
    resolve: (entry) => lineageOf(entry),
  }),
}));

const MAX_PAGE = 100;

function userIdArg(userId: string | number): string {
  const id = String(userId);
  if (id.length === 0 || id.length > MAX_USER_ID_LENGTH) {
    throw new GraphQLError(`userId: 1 to ${MAX_USER_ID_LENGTH} characters`, {
      extensions: { code: "BAD_USER_INPUT" },
    });
  }
  return id;
}

builder.queryFields((t) => ({
  userBalance: t.withAuth({ operator: true }).field({
    type: BalanceRef,
    description: "Any user's balance. Needs tokens:admin or tokens:read.",
    args: { userId: t.arg.id({ required: true, description: "The user (the app_user_id)." }) },
    resolve: (_root, args, context) => context.ledger.balanceOf(userIdArg(args.userId)),
  }),
  userTransactions: t.withAuth({ operator: true }).field({
    type: [TokenTransactionRef],
    description: "Any user's ledger entries, newest first. Needs tokens:admin or tokens:read.",
    args: {
      userId: t.arg.id({ required: true, description: "The user (the app_user_id)." }),
      first: t.arg.int({ required: false, description: `How many; 1 to ${MAX_PAGE}, default 50.` }),
      olderThanEntry: t.arg.int({ required: false, description: "Entries older than this entryId." }),
    },
    resolve: (_root, args, context) => {
      const limit = args.first ?? 50;
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) {
        throw new GraphQLError(`first: 1 to ${MAX_PAGE}`, { extensions: { code: "BAD_USER_INPUT" } });
      }
      return listEntries(context.db, userIdArg(args.userId), {
        limit,
        olderThan: args.olderThanEntry ?? undefined,
      });
    },
  }),
}));
