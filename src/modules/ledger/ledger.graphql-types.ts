import { GraphQLError } from "graphql";
import { ENTRY_KINDS, type EntryKind, MAX_BALANCE, MAX_USER_ID_LENGTH } from "../../db/schema.js";
import { builder, registerNodeType } from "../../graphql/builder.js";
import {
  EXPIRING_DESCRIPTION,
  ExpiringTokensRef,
  expiringFor,
  NEXT_EXPIRY_DESCRIPTION,
  type WithExpiring,
} from "./ledger.lots.graphql-types.js";
import {
  GRANT_ERROR_CODES,
  type GrantErrorCode,
  type Payload,
  SPEND_ERROR_CODES,
  type SpendErrorCode,
} from "./ledger.payloads.js";
import { type Balance, balanceAfter, getEntry, type LedgerEntry } from "./ledger.queries.js";
import {
  DESCRIPTION_MAX_LENGTH,
  IDEMPOTENCY_KEY_MAX_LENGTH,
  METADATA_MAX_BYTES,
} from "./ledger.validation.js";

/** The ledger's GraphQL types; its queries and mutations are in ledger.graphql.ts. */

/** An enum whose values come from a const array, each with what it means. */
export function enumOf<Value extends string>(
  name: string,
  description: string,
  values: readonly Value[],
  meanings: Record<Value, string>,
) {
  return builder.enumType(name, {
    description,
    values: Object.fromEntries(
      values.map((value) => [value, { value, description: meanings[value] }]),
    ) as Record<Value, { value: Value; description: string }>,
  });
}

export const tokens = MAX_BALANCE.toLocaleString("en-US");

export const EntryKindEnum = enumOf<EntryKind>("TransactionKind", "Why a ledger entry exists.", ENTRY_KINDS, {
  SPEND: "The user spent tokens.",
  GRANT: "An operator granted tokens.",
  PURCHASE: "A store purchase credited its tokens.",
  REFUND: "A refunded purchase took its tokens back, as far as the balance allowed.",
  REFUND_REVERSAL: "A reversed refund gave back what the refund took.",
  LEGACY_IMPORT:
    "A balance carried over from the app's old RevenueCat subscriber attribute, once per customer.",
  ADJUSTMENT: "An operator's correction, up or down, with a reason; metadata.adjustedBy names the operator.",
  TRANSFER:
    "Tokens an operator moved between two users: a debit on one and a credit on the other, committed together.",
  EXPIRE: "Tokens of a lot that reached its end unused (or was superseded by an upgrade) were written off.",
});

const SpendErrorCodeEnum = enumOf<SpendErrorCode>(
  "SpendErrorCode",
  "Why a spend was refused.",
  SPEND_ERROR_CODES,
  {
    INSUFFICIENT_TOKENS: "The balance is lower than the amount.",
    IDEMPOTENCY_KEY_REUSED: "The idempotency key was used before for a different spend.",
    RATE_LIMITED: "Too many spends; wait and try again.",
  },
);

const GrantErrorCodeEnum = enumOf<GrantErrorCode>(
  "GrantErrorCode",
  "Why a grant was refused.",
  GRANT_ERROR_CODES,
  {
    BALANCE_LIMIT_EXCEEDED: `The balance would exceed ${tokens} tokens.`,
    IDEMPOTENCY_KEY_REUSED: "The idempotency key was used before for a different grant.",
  },
);

/** A ledger entry id is a positive whole number below 2^53; anything else is the client's mistake. */
function parseEntryId(id: string): number {
  if (!/^[1-9]\d{0,14}$/.test(id)) {
    throw new GraphQLError("Invalid id: not a ledger entry id", { extensions: { code: "BAD_USER_INPUT" } });
  }
  return Number(id);
}

export const TokenTransactionRef = builder.node(
  builder.objectRef<LedgerEntry>(registerNodeType("TokenTransaction")),
  {
    description: "One immutable ledger entry. Corrections are new entries, never edits.",
    id: { resolve: (entry) => entry.id },
    isTypeOf: (value) => typeof value === "object" && value !== null && "balanceAfter" in value,
    loadOne: (id, context) =>
      context.viewer ? getEntry(context.db, context.viewer.userId, parseEntryId(String(id))) : null,
    fields: (t) => ({
      amount: t.exposeInt("amount", {
        description: "Signed token amount: credits positive, debits negative.",
      }),
      balanceAfter: t.exposeInt("balanceAfter", { description: "The balance right after this entry." }),
      kind: t.expose("kind", { type: EntryKindEnum, description: "Why this entry exists." }),
      description: t.exposeString("description", { nullable: true, description: "What the entry was for." }),
      metadata: t.expose("metadata", {
        type: "JSON",
        nullable: true,
        description: "Caller-supplied JSON object.",
      }),
      idempotencyKey: t.string({
        nullable: true,
        description: "The idempotency key the caller sent with this spend; null for other kinds of entry.",
        resolve: (entry) => (entry.kind === "SPEND" ? entry.idempotencyKey : null),
      }),
      createdAt: t.expose("createdAt", { type: "DateTime", description: "When the entry was committed." }),
    }),
  },
);

/** A balance, perhaps with its expiring tokens already read (a live event's). */
export type BalanceView = Balance & WithExpiring;

/**
 * A balance is a node whose id stays the same for its user, so client caches (Apollo, urql) update
 * it in place from any payload that returns it.
 */
export const BalanceRef = builder.node(builder.objectRef<BalanceView>(registerNodeType("Balance")), {
  description: "A user's token balance.",
  id: { resolve: (balance) => balance.userId },
  isTypeOf: (value) => typeof value === "object" && value !== null && "lastUpdated" in value,
  loadOne: (id, context) =>
    context.viewer && String(id) === context.viewer.userId
      ? context.ledger.balanceOf(context.viewer.userId)
      : null,
  fields: (t) => ({
    balance: t.exposeInt("balance", {
      description:
        "Whole tokens the user has; never negative. Tokens past their expiry are never counted, even in the moments before their EXPIRE entry is written.",
    }),
    held: t.exposeInt("held", {
      description: "Tokens set aside by holds awaiting capture or release; 0 until holds exist.",
    }),
    available: t.int({
      description:
        "Tokens a spend can use now: balance less held. Like balance, never counts expired tokens.",
      resolve: (balance) => balance.balance - balance.held,
    }),
    expiring: t.field({
      type: [ExpiringTokensRef],
      description: EXPIRING_DESCRIPTION,
      resolve: (balance, _args, context) => expiringFor(balance, context.db),
    }),
    nextExpiry: t.field({
      type: ExpiringTokensRef,
      nullable: true,
      description: NEXT_EXPIRY_DESCRIPTION,
      resolve: async (balance, _args, context) => (await expiringFor(balance, context.db))[0] ?? null,
    }),
    lastUpdated: t.expose("lastUpdated", {
      type: "DateTime",
      nullable: true,
      description: "When the balance last changed; null before the first entry.",
    }),
    version: t.exposeInt("version", { description: "Grows by exactly one with every change." }),
  }),
});

/** The fields every mutation payload shares; refusals are data with the unchanged balance. */
export function payloadType<Code extends string>(
  name: string,
  errorCodes: ReturnType<typeof enumOf<Code>>,
  texts: { description: string; success: string; newBalance: string; transaction: string; balance: string },
) {
  return builder.objectRef<Payload<Code>>(name).implement({
    description: texts.description,
    fields: (t) => ({
      success: t.exposeBoolean("success", { description: texts.success }),
      newBalance: t.exposeInt("newBalance", { description: texts.newBalance }),
      message: t.exposeString("message", { description: "A sentence a person can read." }),
      transaction: t.field({
        type: TokenTransactionRef,
        nullable: true,
        description: texts.transaction,
        resolve: (payload) => payload.entry,
      }),
      balance: t.field({
        type: BalanceRef,
        description: texts.balance,
        // A fresh write's entry holds the balance as it committed; a replay or a refusal reads it now.
        resolve: (payload, _args, context) =>
          payload.entry && !payload.replayed
            ? balanceAfter(payload.entry)
            : context.ledger.balanceOf(payload.userId),
      }),
      errorCode: t.field({
        type: errorCodes,
        nullable: true,
        description: "Why it was refused.",
        resolve: (payload) => payload.errorCode as never,
      }),
    }),
  });
}

export const SpendPayloadRef = payloadType("SpendTokensPayload", SpendErrorCodeEnum, {
  description: "The result of a spend. Refusals are data: success false, an errorCode, balance unchanged.",
  success: "True when the tokens were spent (or the spend replayed).",
  newBalance: "The balance after this call.",
  transaction: "The ledger entry; the same one on every replay of an idempotency key.",
  balance: "The caller's balance now, with its id and version, so client caches update themselves.",
});

builder.objectField(SpendPayloadRef, "retryAfterSeconds", (t) =>
  t.exposeInt("retryAfterSeconds", {
    nullable: true,
    description: "With RATE_LIMITED: seconds to wait before spending again.",
  }),
);

export const GrantPayloadRef = payloadType("GrantTokensPayload", GrantErrorCodeEnum, {
  description: "The result of an admin grant.",
  success: "True when the tokens were granted (or replayed).",
  newBalance: "The user's balance after this call.",
  transaction: "The ledger entry.",
  balance: "The granted user's balance now.",
});

export const AMOUNT = `Whole tokens, 1 to ${tokens}.`;
export const KEY = `1 to ${IDEMPOTENCY_KEY_MAX_LENGTH} characters; a retry with the same key returns the original result.`;

/** The limits are checked by the ledger's own validation, the same for GraphQL and REST. */
export const SpendTokensInput = builder.inputType("SpendTokensInput", {
  description: "What to spend. Send an idempotencyKey so that a retry can never spend twice.",
  fields: (t) => ({
    amount: t.int({ required: true, description: AMOUNT }),
    description: t.string({ required: true, description: `1 to ${DESCRIPTION_MAX_LENGTH} characters.` }),
    metadata: t.field({
      type: "JSON",
      required: false,
      description: `A JSON object of at most ${METADATA_MAX_BYTES / 1024} KB, stored with the entry.`,
    }),
    idempotencyKey: t.string({ required: false, description: KEY }),
  }),
});

export const GrantTokensInput = builder.inputType("GrantTokensInput", {
  description: "An operator's grant of tokens to a user.",
  fields: (t) => ({
    userId: t.id({
      required: true,
      description: `The user (the app_user_id) to credit; at most ${MAX_USER_ID_LENGTH} characters.`,
    }),
    amount: t.int({ required: true, description: AMOUNT }),
    reason: t.string({ required: true, description: `Why; 1 to ${DESCRIPTION_MAX_LENGTH} characters.` }),
    idempotencyKey: t.string({ required: false, description: KEY }),
  }),
});
