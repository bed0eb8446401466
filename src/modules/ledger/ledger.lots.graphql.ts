import { GraphQLError } from "graphql";
import { MAX_USER_ID_LENGTH } from "../../db/schema.js";
import { builder } from "../../graphql/builder.js";
import { lotsOf } from "./ledger.lot-queries.js";
import { TokenLotRef } from "./ledger.lots.graphql-types.js";

/** An operator's view of a user's lots: which grants the balance is made of, and when each ends. */

const MAX_LOTS = 100;

builder.queryFields((t) => ({
  userLots: t.withAuth({ operator: true }).field({
    type: [TokenLotRef],
    description:
      "A user's lots: those with tokens left in the order spends draw them (soonest expiry first, non-expiring last), then, with includeEmpty, spent or expired ones newest first. Needs tokens:admin or tokens:read.",
    args: {
      userId: t.arg.id({ required: true, description: "The user (the app_user_id)." }),
      first: t.arg.int({ required: false, description: `How many; 1 to ${MAX_LOTS}, default 50.` }),
      includeEmpty: t.arg.boolean({
        required: false,
        description: "Also list lots with nothing left (spent, expired or taken back); false by default.",
      }),
    },
    resolve: (_root, args, context) => {
      const userId = String(args.userId);
      if (userId.length === 0 || userId.length > MAX_USER_ID_LENGTH) {
        throw new GraphQLError(`userId: 1 to ${MAX_USER_ID_LENGTH} characters`, {
          extensions: { code: "BAD_USER_INPUT" },
        });
      }
      const limit = args.first ?? 50;
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LOTS) {
        throw new GraphQLError(`first: 1 to ${MAX_LOTS}`, { extensions: { code: "BAD_USER_INPUT" } });
      }
      return lotsOf(context.db, userId, { limit, includeEmpty: args.includeEmpty ?? false });
    },
  }),
}));
