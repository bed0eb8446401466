import { type ResolveCursorConnectionArgs, resolveCursorConnection } from "@pothos/plugin-relay";
import { GraphQLError } from "graphql";
import { builder } from "../../graphql/builder.js";
import {
  BalanceRef,
  GrantPayloadRef,
  GrantTokensInput,
  SpendPayloadRef,
  SpendTokensInput,
  TokenTransactionRef,
} from "./ledger.graphql-types.js";
import { grantPayload, spendPayload } from "./ledger.payloads.js";
import { listEntries } from "./ledger.queries.js";

builder.queryFields((t) => ({
  balance: t.withAuth({ user: true }).field({
    type: BalanceRef,
    description: "The caller's balance.",
    resolve: (_root, _args, context) => context.ledger.balanceOf(context.viewer.userId),
  }),
  transactions: t.withAuth({ user: true }).connection(
    {
      type: TokenTransactionRef,
      description: "The caller's ledger entries, newest first.",
      resolve: async (_root, args, context) => {
        const connection = await resolveCursorConnection(
          { args, toCursor: (entry) => encodeCursor(entry.id), defaultSize: 20, maxSize: 100 },
          ({ before, after, limit, inverted }: ResolveCursorConnectionArgs) =>
            listEntries(context.db, context.viewer.userId, {
              // Newest first: "after" a cursor means older entries, "before" it newer ones.
              olderThan: after === undefined ? undefined : decodeCursor(after),
              newerThan: before === undefined ? undefined : decodeCursor(before),
              limit,
              oldestFirst: inverted,
            }),
        );
        // An empty page has no cursors: null, as the Relay spec has it, not "".
        if (connection.edges.length > 0) return connection;
        return { ...connection, pageInfo: { ...connection.pageInfo, startCursor: null, endCursor: null } };
      },
    },
    { name: "TokenTransactionConnection", description: "A page of ledger entries, newest first." },
    { name: "TokenTransactionEdge", description: "One ledger entry and its cursor." },
  ),
}));

builder.mutationFields((t) => ({
  spendTokens: t.withAuth({ user: true }).field({
    type: SpendPayloadRef,
    description: "Spends the caller's tokens. Refusals come back as data with an errorCode.",
    args: { input: t.arg({ type: SpendTokensInput, required: true }) },
    resolve: (_root, { input }, context) => spendPayload(context, context.viewer.userId, input),
  }),
  grantTokens: t.withAuth({ admin: true }).field({
    type: GrantPayloadRef,
    description: "Credits a user's tokens. Needs the tokens:admin scope.",
    args: { input: t.arg({ type: GrantTokensInput, required: true }) },
    resolve: (_root, { input }, context) =>
      grantPayload(context, { ...input, userId: String(input.userId) }, context.viewer.userId),
  }),
}));

function encodeCursor(id: number): string {
  return Buffer.from(`tx:${id}`).toString("base64url");
}

function decodeCursor(cursor: string): number {
  const match = /^tx:(\d{1,15})$/.exec(Buffer.from(cursor, "base64url").toString());
  if (!match) throw new GraphQLError("Invalid cursor", { extensions: { code: "BAD_USER_INPUT" } });
  return Number(match[1]);
}
