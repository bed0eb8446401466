import { builder } from "../../graphql/builder.js";
import type { ReprocessSummary } from "./purchases.service.js";

const OutcomeCountRef = builder
  .objectRef<{ outcome: string; count: number }>("WebhookOutcomeCount")
  .implement({
    description: "How many reprocessed RevenueCat events ended in one outcome.",
    fields: (t) => ({
      outcome: t.exposeString("outcome", { description: "credited, unmapped, failed, ... or skipped." }),
      count: t.exposeInt("count", { description: "How many events." }),
    }),
  });

const ReprocessPayloadRef = builder.objectRef<ReprocessSummary>("ReprocessWebhooksPayload").implement({
  description: "What reprocessing the kept unmapped and failed RevenueCat events did.",
  fields: (t) => ({
    reprocessed: t.exposeInt("reprocessed", { description: "How many events were picked up." }),
    outcomes: t.field({
      type: [OutcomeCountRef],
      description: "What became of them, by outcome.",
      resolve: (summary) => Object.entries(summary.outcomes).map(([outcome, count]) => ({ outcome, count })),
    }),
  }),
});

builder.mutationFields((t) => ({
  reprocessWebhooks: t.withAuth({ admin: true }).field({
    type: ReprocessPayloadRef,
    description:
      "Applies kept unmapped and failed RevenueCat events again with the server's PRODUCT_TOKEN_MAP; each credits at most once. Needs tokens:admin.",
    async resolve(_root, _args, context) {
      // Who asked, on the request's logger (so with its request id), before anything is applied.
      const log = context.logger.child({ callerId: context.viewer.userId });
      log.info("reprocessWebhooks requested");
      const summary = await context.purchases.reprocessAll(log);
      log.info({ reprocessed: summary.reprocessed, outcomes: summary.outcomes }, "reprocessWebhooks done");
      return summary;
    },
  }),
}));
