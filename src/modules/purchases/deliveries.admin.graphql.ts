import { GraphQLError } from "graphql";
import { MAX_USER_ID_LENGTH } from "../../db/schema.js";
import { builder } from "../../graphql/builder.js";
import { enumOf } from "../ledger/ledger.graphql-types.js";
import {
  DELIVERY_FILTERS,
  type Delivery,
  type DeliveryFilter,
  getDelivery,
  isHeld,
  listDeliveries,
} from "./deliveries.queries.js";

/** The kept RevenueCat deliveries, for operators (the console): reads, and reprocessing one. */

const DeliveryFilterEnum = enumOf<DeliveryFilter>(
  "WebhookDeliveryFilter",
  "Which deliveries to list, by what became of them.",
  DELIVERY_FILTERS,
  {
    processing: "Being processed right now (or interrupted mid-way).",
    credited: "A purchase that credited its tokens.",
    refunded: "A refund that took tokens back.",
    refund_reversed: "A reversed refund that gave them back.",
    extended: "SUBSCRIPTION_EXTENDED: a subscription lot now ends later.",
    cut: "An EXPIRATION before a subscription lot's end: the lot ended early, its unused tokens expired.",
    duplicate: "A repeat of an event already processed.",
    ignored: "An event type that moves no tokens (held purchases excluded).",
    unmapped: "A purchase of a product not in PRODUCT_TOKEN_MAP: map it, then reprocess.",
    unmatched: "A refund or reversal waiting for what it applies to.",
    failed: "Processing failed; RevenueCat retries, or reprocess it.",
    held: "A purchase its early refund kept from crediting.",
    attention: "Failed, unmapped and held deliveries together: what an operator should look at.",
  },
);

const DeliveryRef = builder.objectRef<Delivery>("WebhookDelivery").implement({
  description: "One kept RevenueCat delivery and what became of it.",
  fields: (t) => ({
    eventId: t.exposeString("eventId", { description: "RevenueCat's event id." }),
    type: t.exposeString("type", { description: "The event type (INITIAL_PURCHASE, CANCELLATION, ...)." }),
    appUserId: t.exposeString("appUserId", { nullable: true, description: "The app_user_id it named." }),
    userId: t.exposeString("userId", { nullable: true, description: "The user it touched, after aliases." }),
    productId: t.exposeString("productId", { nullable: true, description: "The store product." }),
    store: t.exposeString("store", { nullable: true, description: "The store." }),
    transactionId: t.exposeString("transactionId", { nullable: true, description: "The store transaction." }),
    environment: t.exposeString("environment", { nullable: true, description: "PRODUCTION or SANDBOX." }),
    outcome: t.exposeString("outcome", { description: "What became of it (credited, unmapped, ...)." }),
    held: t.boolean({ description: "A purchase its early refund held back.", resolve: (d) => isHeld(d) }),
    detail: t.exposeString("detail", { nullable: true, description: "Why, in words." }),
    ledgerEntryId: t.exposeInt("ledgerEntryId", { nullable: true, description: "The entry it wrote." }),
    deliveries: t.exposeInt("deliveries", { description: "How many times RevenueCat sent it." }),
    receivedAt: t.expose("receivedAt", { type: "DateTime", description: "When it first arrived." }),
    processedAt: t.expose("processedAt", {
      type: "DateTime",
      nullable: true,
      description: "When its outcome was recorded.",
    }),
    rawBody: t.exposeString("rawBody", { description: "The body exactly as RevenueCat sent it." }),
  }),
});

const MAX_PAGE = 100;

builder.queryFields((t) => ({
  webhookDelivery: t.withAuth({ operator: true }).field({
    type: DeliveryRef,
    nullable: true,
    description: "One kept RevenueCat delivery by event id. Needs tokens:admin or tokens:read.",
    args: { eventId: t.arg.string({ required: true, description: "RevenueCat's event id." }) },
    resolve: (_root, { eventId }, context) =>
      eventId.length > 200 ? null : getDelivery(context.db, eventId),
  }),
  webhookDeliveries: t.withAuth({ operator: true }).field({
    type: [DeliveryRef],
    description: "Kept RevenueCat deliveries, newest first. Needs tokens:admin or tokens:read.",
    args: {
      filter: t.arg({ type: DeliveryFilterEnum, required: false, description: "By what became of them." }),
      userId: t.arg.id({ required: false, description: "Only this user's (app_user_id or resolved user)." }),
      receivedBefore: t.arg({ type: "DateTime", required: false, description: "Older than this (paging)." }),
      first: t.arg.int({ required: false, description: `How many; 1 to ${MAX_PAGE}, default 50.` }),
    },
    resolve: (_root, args, context) => {
      const limit = args.first ?? 50;
      const userId = args.userId === null || args.userId === undefined ? undefined : String(args.userId);
      if (
        !Number.isInteger(limit) ||
        limit < 1 ||
        limit > MAX_PAGE ||
        (userId?.length ?? 0) > MAX_USER_ID_LENGTH
      ) {
        throw new GraphQLError(`first: 1 to ${MAX_PAGE}; userId: at most ${MAX_USER_ID_LENGTH} characters`, {
          extensions: { code: "BAD_USER_INPUT" },
        });
      }
      const filter = args.filter ?? undefined;
      return listDeliveries(context.db, {
        filter,
        userId,
        receivedBefore: args.receivedBefore ?? undefined,
        limit,
      });
    },
  }),
}));

builder.mutationFields((t) => ({
  reprocessWebhookDelivery: t.withAuth({ admin: true }).field({
    type: DeliveryRef,
    nullable: true,
    description:
      "Applies one kept unmapped or failed delivery again with the server's PRODUCT_TOKEN_MAP; it credits at most once. Null when there is no such delivery. Needs tokens:admin.",
    args: { eventId: t.arg.string({ required: true, description: "RevenueCat's event id." }) },
    async resolve(_root, { eventId }, context) {
      if (eventId.length === 0 || eventId.length > 200) {
        throw new GraphQLError("eventId: 1 to 200 characters", { extensions: { code: "BAD_USER_INPUT" } });
      }
      const log = context.logger.child({ callerId: context.viewer.userId, eventId });
      log.info("reprocessWebhookDelivery requested");
      await context.purchases.reprocess(eventId, log);
      return getDelivery(context.db, eventId);
    },
  }),
}));
