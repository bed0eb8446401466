import type { Executor } from "../../db/client.js";
import { type LotSource, MAX_USER_ID_LENGTH } from "../../db/schema.js";
import { builder } from "../../graphql/builder.js";
import { EXPIRING_LIST_MAX, type ExpiringTokens, expiringOf, type Lot } from "./ledger.lot-queries.js";

/** The GraphQL types of lots: what expires when (for apps) and the lots themselves (for operators). */

const SOURCE_MEANINGS: Record<LotSource, [name: string, meaning: string]> = {
  pack: ["PACK", "A one-time purchase (a token pack); never expires."],
  period: ["PERIOD", "One period of a subscription; expires at the period's end."],
  trial: ["TRIAL", "A subscription's trial period."],
  grant: ["GRANT", "An operator's grant or adjustment, or a transfer's credit."],
  rollover: ["ROLLOVER", "What a subscription period carried into the next one under its rollover rule."],
  restore: ["RESTORE", "Tokens given back by a reversed refund."],
  legacy: ["LEGACY", "A legacy import, or a balance that existed before lots."],
};

export const TokenSourceEnum = builder.enumType("TokenSource", {
  description: "Where a lot of tokens came from.",
  values: Object.fromEntries(
    Object.entries(SOURCE_MEANINGS).map(([value, [name, description]]) => [name, { value, description }]),
  ) as Record<string, { value: LotSource; description: string }>,
});

export const ExpiringTokensRef = builder.objectRef<ExpiringTokens>("ExpiringTokens").implement({
  description: "Usable tokens that stop being usable at one instant unless spent before.",
  fields: (t) => ({
    amount: t.exposeInt("amount", { description: "How many tokens expire then." }),
    expiresAt: t.expose("expiresAt", {
      type: "DateTime",
      description: "From this instant on they can no longer be spent.",
    }),
    sources: t.field({
      type: [TokenSourceEnum],
      description: "Where they came from (usually one source, such as PERIOD).",
      resolve: (tokens) => [...tokens.sources],
    }),
  }),
});

/** A balance that may carry its expiring tokens already (a live event read them once for everyone). */
export interface WithExpiring {
  readonly userId: string;
  readonly expiring?: readonly ExpiringTokens[] | undefined;
}

const reads = new WeakMap<object, Promise<readonly ExpiringTokens[]>>();

/** The balance's expiring tokens: the ones it carries, or one read per balance object. */
export function expiringFor(balance: WithExpiring, db: Executor): Promise<readonly ExpiringTokens[]> {
  if (balance.expiring) return Promise.resolve(balance.expiring);
  let read = reads.get(balance);
  if (!read) {
    read = expiringOf(db, balance.userId);
    reads.set(balance, read);
  }
  return read;
}

export const EXPIRING_DESCRIPTION = `Tokens that will expire unless spent, soonest first, one entry per expiry instant (at most ${EXPIRING_LIST_MAX}); empty when nothing expires. Spends use the soonest-expiring tokens first.`;
export const NEXT_EXPIRY_DESCRIPTION =
  "The soonest expiring tokens (the first of expiring), such as 200 tokens on 1 January; null when nothing expires.";

export const TokenLotRef = builder.objectRef<Lot>("TokenLot").implement({
  description:
    "One grant of tokens and what is left of it. Spends draw lots soonest-expiring first; a lot is unusable from expiresAt on.",
  fields: (t) => ({
    id: t.exposeID("id", { description: "The lot's id." }),
    userId: t.exposeID("userId", {
      description: `The owner (the app_user_id, up to ${MAX_USER_ID_LENGTH} characters).`,
    }),
    source: t.expose("source", { type: TokenSourceEnum, description: "Where the tokens came from." }),
    sourceRef: t.exposeString("sourceRef", {
      nullable: true,
      description: "The store transaction that opened it (STORE:transaction_id), if any.",
    }),
    chainRef: t.exposeString("chainRef", {
      nullable: true,
      description:
        "The subscription it belongs to (STORE:original_transaction_id or a credit group), if any.",
    }),
    productId: t.exposeString("productId", { nullable: true, description: "The store product, if any." }),
    granted: t.exposeInt("granted", { description: "Tokens the lot opened with." }),
    remaining: t.exposeInt("remaining", {
      description:
        "Tokens left in it (0 once spent, expired or taken back), including any an active hold keeps: the balance's held tokens are the first ones of its lots, soonest expiry first.",
    }),
    expired: t.exposeInt("expired", {
      description: "Tokens written off unused when it expired or was superseded.",
    }),
    startsAt: t.expose("startsAt", { type: "DateTime", description: "When its period began." }),
    expiresAt: t.expose("expiresAt", {
      type: "DateTime",
      nullable: true,
      description: "From this instant on it can no longer be spent; null: never.",
    }),
    rollover: t.expose("rollover", {
      type: "JSON",
      nullable: true,
      description: 'The rollover rule it was granted with, such as {"cap": 500}; null: none.',
    }),
    entryId: t.exposeID("entryId", {
      nullable: true,
      description: "The ledger entry that opened it; null for a balance that existed before lots.",
    }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When the lot was written." }),
  }),
});
