import { GraphQLError } from "graphql";
import { MAX_USER_ID_LENGTH } from "../../db/schema.js";
import { builder } from "../../graphql/builder.js";
import { BalanceChangeRef } from "./live.graphql.js";

/** Any user's balance, live, for operators watching it in the console. */
builder.subscriptionFields((t) => ({
  userBalanceChanged: t.withAuth({ operator: true }).field({
    type: BalanceChangeRef,
    description:
      "A user's current balance first, then one event per committed change of it, in version order. Needs tokens:admin or tokens:read.",
    args: { userId: t.arg.id({ required: true, description: "The user (the app_user_id)." }) },
    subscribe: (_root, args, context) => {
      const userId = String(args.userId);
      if (userId.length === 0 || userId.length > MAX_USER_ID_LENGTH) {
        throw new GraphQLError(`userId: 1 to ${MAX_USER_ID_LENGTH} characters`, {
          extensions: { code: "BAD_USER_INPUT" },
        });
      }
      return context.hub.subscribe(userId);
    },
    resolve: (change) => change,
  }),
}));
