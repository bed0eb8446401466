import { type ResolveCursorConnectionArgs, resolveCursorConnection } from "@pothos/plugin-relay";
import { GraphQLError } from "graphql";
import { TRANSACTION_KINDS } from "../../db/schema.js";
import { builder, registerNodeType } from "../../graphql/builder.js";
import { grantOutcome, type Outcome, spendOutcome } from "./ledger.outcomes.js";
import { type Balance, getBalance, getEntry, type LedgerEntry, listEntries } from "./ledger.queries.js";
import {
  amountSchema,
  descriptionSchema,
  idempotencyKeySchema,
  metadataSchema,
  type SpendInput,
  userIdSchema,
} from "./ledger.validation.js";

export const TransactionKindEnum = builder.enumType("TransactionKind", {
  description: "Why a ledger entry exists.",
  values: Object.fromEntries(TRANSACTION_KINDS.map((kind) => [kind, { value: kind }])) as Record<
    (typeof TRANSACTION_KINDS)[number],
    { value: (typeof TRANSACTION_KINDS)[number] }
  >,
});

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
      kind: t.expose("kind", { type: TransactionKindEnum, description: "Why this entry exists." }),
      description: t.exposeString("description", { nullable: true, description: "What the entry was for." }),
      metadata: t.expose("metadata", {
        type: "JSON",
        nullable: true,
        description: "Caller-supplied JSON object.",
      }),
      createdAt: t.expose("createdAt", { type: "DateTime", description: "When the entry was committed." }),
    }),
  },
);

export const BalanceRef = builder.objectRef<Balance>("Balance").implement({
  description: "A user's token balance.",
  fields: (t) => ({
    balance: t.exposeInt("balance", { description: "Whole tokens available to spend; never negative." }),
    lastUpdated: t.expose("lastUpdated", {
      type: "DateTime",
      nullable: true,
      description: "When the balance last changed; null before the first entry.",
    }),
    version: t.exposeInt("version", { description: "Grows by exactly one with every change." }),
  }),
});

const SpendErrorCodeEnum = builder.enumType("SpendErrorCode", {
  description: "Why a spend was refused.",
  values: {
    INSUFFICIENT_TOKENS: { description: "The balance is lower than the amount." },
    IDEMPOTENCY_KEY_REUSED: { description: "The idempotency key was used before for a different spend." },
    RATE_LIMITED: { description: "Too many spends; wait and try again." },
  } as const,
});

const GrantErrorCodeEnum = builder.enumType("GrantErrorCode", {
  description: "Why a grant was refused.",
  values: {
    BALANCE_LIMIT_EXCEEDED: { description: "The balance would exceed 2,000,000,000 tokens." },
    IDEMPOTENCY_KEY_REUSED: { description: "The idempotency key was used before for a different grant." },
  } as const,
});

const SpendPayloadRef =
  builder.objectRef<Outcome<"INSUFFICIENT_TOKENS" | "IDEMPOTENCY_KEY_REUSED" | "RATE_LIMITED">>(
    "SpendTokensPayload",
  );
SpendPayloadRef.implement({
  description: "The result of a spend. Refusals are data: success false, an errorCode, balance unchanged.",
  fields: (t) => ({
    success: t.exposeBoolean("success", {
      description: "True when the tokens were spent (or the spend replayed).",
    }),
    newBalance: t.exposeInt("newBalance", { description: "The balance after this call." }),
    message: t.exposeString("message", { description: "A sentence a person can read." }),
    transaction: t.field({
      type: TokenTransactionRef,
      nullable: true,
      description: "The ledger entry; the same one on every replay of an idempotency key.",
      resolve: (outcome) => outcome.entry,
    }),
    errorCode: t.expose("errorCode", {
      type: SpendErrorCodeEnum,
      nullable: true,
      description: "Why it was refused.",
    }),
    retryAfterSeconds: t.exposeInt("retryAfterSeconds", {
      nullable: true,
      description: "With RATE_LIMITED: seconds to wait before spending again.",
    }),
  }),
});

const GrantPayloadRef =
  builder.objectRef<Outcome<"BALANCE_LIMIT_EXCEEDED" | "IDEMPOTENCY_KEY_REUSED">>("GrantTokensPayload");
GrantPayloadRef.implement({
  description: "The result of an admin grant.",
  fields: (t) => ({
    success: t.exposeBoolean("success", { description: "True when the tokens were granted (or replayed)." }),
    newBalance: t.exposeInt("newBalance", { description: "The user's balance after this call." }),
    message: t.exposeString("message", { description: "A sentence a person can read." }),
    transaction: t.field({
      type: TokenTransactionRef,
      nullable: true,
      description: "The ledger entry.",
      resolve: (outcome) => outcome.entry,
    }),
    errorCode: t.expose("errorCode", {
      type: GrantErrorCodeEnum,
      nullable: true,
      description: "Why it was refused.",
    }),
  }),
});

const SpendTokensInput = builder.inputType("SpendTokensInput", {
  description: "What to spend. Send an idempotencyKey so that a retry can never spend twice.",
  fields: (t) => ({
    amount: t.int({
      required: true,
      validate: amountSchema,
      description: "Whole tokens, 1 to 2,000,000,000.",
    }),
    description: t.string({
      required: true,
      validate: descriptionSchema,
      description: "1 to 500 characters.",
    }),
    metadata: t.field({
      type: "JSON",
      required: false,
      validate: metadataSchema.nullish(),
      description: "A JSON object of at most 4 KB, stored with the entry.",
    }),
    idempotencyKey: t.string({
      required: false,
      validate: idempotencyKeySchema.nullish(),
      description: "1 to 255 characters; a retry with the same key returns the original result.",
    }),
  }),
});

const GrantTokensInput = builder.inputType("GrantTokensInput", {
  description: "An operator's grant of tokens to a user.",
  fields: (t) => ({
    userId: t.id({
      required: true,
      validate: userIdSchema,
      description: "The user (the app_user_id) to credit.",
    }),
    amount: t.int({
      required: true,
      validate: amountSchema,
      description: "Whole tokens, 1 to 2,000,000,000.",
    }),
    reason: t.string({
      required: true,
      validate: descriptionSchema,
      description: "Why; 1 to 500 characters.",
    }),
    idempotencyKey: t.string({
      required: false,
      validate: idempotencyKeySchema.nullish(),
      description: "1 to 255 characters; a retry with the same key returns the original result.",
    }),
  }),
});

builder.queryFields((t) => ({
  balance: t.withAuth({ user: true }).field({
    type: BalanceRef,
    description: "The caller's balance.",
    resolve: (_root, _args, context) => getBalance(context.db, context.viewer.userId),
  }),
  transactions: t.withAuth({ user: true }).connection(
    {
      type: TokenTransactionRef,
      description: "The caller's ledger entries, newest first.",
      resolve: (_root, args, context) =>
        resolveCursorConnection(
          { args, toCursor: (entry) => encodeCursor(entry.id), defaultSize: 20, maxSize: 100 },
          ({ before, after, limit, inverted }: ResolveCursorConnectionArgs) =>
            listEntries(context.db, context.viewer.userId, {
              // Newest first: "after" a cursor means older entries, "before" it newer ones.
              olderThan: after === undefined ? undefined : decodeCursor(after),
              newerThan: before === undefined ? undefined : decodeCursor(before),
              limit,
              oldestFirst: inverted,
            }),
        ),
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
    // The validation plugin has already checked metadata against metadataSchema.
    resolve: (_root, { input }, context) => spendOutcome(context, context.viewer.userId, input as SpendInput),
  }),
  grantTokens: t.withAuth({ admin: true }).field({
    type: GrantPayloadRef,
    description: "Credits a user's tokens. Needs the tokens:admin scope.",
    args: { input: t.arg({ type: GrantTokensInput, required: true }) },
    resolve: (_root, { input }, context) =>
      grantOutcome(context, { ...input, userId: String(input.userId), grantedBy: context.viewer.userId }),
  }),
}));

function encodeCursor(id: number): string {
  return Buffer.from(`tx:${id}`).toString("base64url");
}

/** A ledger entry id is a positive whole number below 2^53; anything else is the client's mistake. */
function parseEntryId(id: string): number {
  if (!/^[1-9]\d{0,14}$/.test(id)) {
    throw new GraphQLError("Invalid id: not a ledger entry id", { extensions: { code: "BAD_USER_INPUT" } });
  }
  return Number(id);
}

function decodeCursor(cursor: string): number {
  const match = /^tx:(\d{1,15})$/.exec(Buffer.from(cursor, "base64url").toString());
  if (!match) throw new GraphQLError("Invalid cursor", { extensions: { code: "BAD_USER_INPUT" } });
  return Number(match[1]);
}
