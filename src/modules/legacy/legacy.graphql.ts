import { GraphQLError } from "graphql";
import { builder } from "../../graphql/builder.js";
import type { PurchaseCredits } from "../ledger/ledger.queries.js";
import { type LedgerFacts, ledgerFacts } from "./legacy-ledger-reads.js";

/** The most ids one lookup takes (the import asks a chunk of 500 at a time). */
export const MAX_LOOKUP_IDS = 1000;

const ImportedRef = builder
  .objectRef<{ customerId: string; importedAt: Date }>("LegacyImportedCustomer")
  .implement({
    description: "A legacy customer whose balance was imported.",
    fields: (t) => ({
      customerId: t.exposeString("customerId", { description: "The legacy customer id." }),
      importedAt: t.expose("importedAt", { type: "DateTime", description: "When its import committed." }),
    }),
  });

const PurchasesRef = builder
  .objectRef<PurchaseCredits & { userId: string }>("LegacyPurchaseCredits")
  .implement({
    description: "The tokens a user's purchases credited in this ledger.",
    fields: (t) => ({
      userId: t.exposeString("userId", { description: "The user." }),
      allTokens: t.exposeInt("allTokens", { description: "Every purchase credit's tokens." }),
      windowTokens: t.exposeInt("windowTokens", {
        description: "The tokens of purchases credited within the window asked for.",
      }),
    }),
  });

const FactsRef = builder.objectRef<LedgerFacts>("LegacyImportFacts").implement({
  description: "What the ledger knows about some legacy customers, for a dry-run import.",
  fields: (t) => ({
    imported: t.field({
      type: [ImportedRef],
      description: "The customers among those asked whose balance was imported.",
      resolve: (facts) => [...facts.imported].map(([customerId, importedAt]) => ({ customerId, importedAt })),
    }),
    purchases: t.field({
      type: [PurchasesRef],
      description: "The users among those asked that have purchase credits.",
      resolve: (facts) => [...facts.purchases].map(([userId, credits]) => ({ userId, ...credits })),
    }),
  }),
});

builder.queryFields((t) => ({
  legacyImportFacts: t.withAuth({ admin: true }).field({
    type: FactsRef,
    description:
      "Read-only facts a dry run of `npm run legacy:import` needs while this server holds the embedded database: which customers were imported, and the users' purchase credits (within [purchasesSince, purchasesUntil)). Needs tokens:admin.",
    args: {
      customerIds: t.arg.stringList({ required: true, description: "Legacy customer ids." }),
      userIds: t.arg.stringList({ required: true, description: "The users the customers credit." }),
      purchasesSince: t.arg({ type: "DateTime", description: "Count purchases credited from then on." }),
      purchasesUntil: t.arg({ type: "DateTime", required: true, description: "And before then." }),
    },
    resolve: (_root, args, context) => {
      if (args.customerIds.length > MAX_LOOKUP_IDS || args.userIds.length > MAX_LOOKUP_IDS) {
        throw new GraphQLError(`At most ${MAX_LOOKUP_IDS} ids a lookup`, {
          extensions: { code: "BAD_USER_INPUT" },
        });
      }
      return ledgerFacts(context.db, args.customerIds, args.userIds, {
        since: args.purchasesSince ?? undefined,
        until: args.purchasesUntil,
      });
    },
  }),
}));
