import { MAX_USER_ID_LENGTH } from "../../db/schema.js";
import { builder } from "../../graphql/builder.js";
import {
  AMOUNT,
  BalanceRef,
  enumOf,
  KEY,
  payloadType,
  TokenTransactionRef,
  tokens,
} from "./ledger.graphql-types.js";
import {
  ADMIN_ERROR_CODES,
  type AdminErrorCode,
  adjustPayload,
  reverseSpendPayload,
  type TransferPayload,
  transferPayload,
} from "./ledger.payloads.js";
import { DESCRIPTION_MAX_LENGTH } from "./ledger.validation.js";

/** The operator's corrections (admins only): adjustTokens, transferTokens, reverseSpend, and their types. */

const AdminErrorCodeEnum = enumOf<AdminErrorCode>(
  "AdminErrorCode",
  "Why an operator's adjustment or transfer was refused.",
  ADMIN_ERROR_CODES,
  {
    INSUFFICIENT_TOKENS: "The balance to debit is lower than the amount; nothing was written.",
    BALANCE_LIMIT_EXCEEDED: `A balance would exceed ${tokens} tokens; nothing was written.`,
    IDEMPOTENCY_KEY_REUSED: "The idempotency key was used before for a different request.",
  },
);

export const AdjustPayloadRef = payloadType("AdjustTokensPayload", AdminErrorCodeEnum, {
  description: "The result of an operator's adjustment. Refusals are data: success false, an errorCode.",
  success: "True when the balance was adjusted (or the adjustment replayed).",
  newBalance: "The user's balance after this call.",
  transaction: "The ADJUSTMENT entry; the same one on every replay of an idempotency key.",
  balance: "The adjusted user's balance now.",
});

export const TransferPayloadRef = builder.objectRef<TransferPayload>("TransferTokensPayload").implement({
  description: "The result of a transfer: both entries, or neither and an errorCode.",
  fields: (t) => ({
    success: t.exposeBoolean("success", {
      description: "True when the tokens moved (or the transfer replayed).",
    }),
    message: t.exposeString("message", { description: "A sentence a person can read." }),
    debit: t.field({
      type: TokenTransactionRef,
      nullable: true,
      description: "The TRANSFER entry that took the tokens from fromUserId.",
      resolve: (payload) => payload.debit,
    }),
    credit: t.field({
      type: TokenTransactionRef,
      nullable: true,
      description: "The TRANSFER entry that gave them to toUserId.",
      resolve: (payload) => payload.credit,
    }),
    from: t.field({
      type: BalanceRef,
      description: "fromUserId's balance now.",
      resolve: (payload, _args, context) => context.ledger.balanceOf(payload.fromUserId),
    }),
    to: t.field({
      type: BalanceRef,
      description: "toUserId's balance now.",
      resolve: (payload, _args, context) => context.ledger.balanceOf(payload.toUserId),
    }),
    errorCode: t.field({
      type: AdminErrorCodeEnum,
      nullable: true,
      description: "Why it was refused.",
      resolve: (payload) => payload.errorCode,
    }),
  }),
});

const USER_ID = `at most ${MAX_USER_ID_LENGTH} characters`;
const REASON = `Why, for the record; 1 to ${DESCRIPTION_MAX_LENGTH} characters.`;

export const AdjustTokensInput = builder.inputType("AdjustTokensInput", {
  description: "An operator's signed correction of a user's balance.",
  fields: (t) => ({
    userId: t.id({ required: true, description: `The user (the app_user_id); ${USER_ID}.` }),
    amount: t.int({
      required: true,
      description: `Signed whole tokens, not 0: positive credits, negative debits (-${tokens} to ${tokens}). A debit larger than the balance is refused, never clamped.`,
    }),
    reason: t.string({ required: true, description: REASON }),
    idempotencyKey: t.string({ required: false, description: KEY }),
  }),
});

export const TransferTokensInput = builder.inputType("TransferTokensInput", {
  description: "Tokens to move from one user to another, both sides in one transaction.",
  fields: (t) => ({
    fromUserId: t.id({ required: true, description: `The user to debit; ${USER_ID}.` }),
    toUserId: t.id({ required: true, description: `The user to credit (not fromUserId); ${USER_ID}.` }),
    amount: t.int({ required: true, description: AMOUNT }),
    reason: t.string({ required: true, description: REASON }),
    idempotencyKey: t.string({
      required: false,
      description: `${KEY} One key covers both sides (for RevenueCat's TRANSFER event, its event id).`,
    }),
  }),
});

export const ReverseSpendInput = builder.inputType("ReverseSpendInput", {
  description: "A spend to give back: its tokens return to the lots it drew from.",
  fields: (t) => ({
    entryId: t.globalID({
      required: true,
      for: [TokenTransactionRef],
      description: "The SPEND entry to reverse (its TokenTransaction.id).",
    }),
    reason: t.string({ required: true, description: REASON }),
  }),
});

builder.mutationFields((t) => ({
  reverseSpend: t.withAuth({ admin: true }).field({
    type: AdjustPayloadRef,
    description:
      "Gives a spend's tokens back as one ADJUSTMENT entry: into the lots the spend drew from, and where such a lot has ended they expire at once (an EXPIRE entry after it). A spend is reversed once; asking again answers the first reversal. Needs the tokens:admin scope.",
    args: { input: t.arg({ type: ReverseSpendInput, required: true }) },
    resolve: (_root, { input }, context) =>
      reverseSpendPayload(context, { ...input, entryId: input.entryId.id }, context.viewer.userId),
  }),
  adjustTokens: t.withAuth({ admin: true }).field({
    type: AdjustPayloadRef,
    description:
      "Corrects a user's balance up or down, with a reason recorded with who did it; never below 0. Needs the tokens:admin scope.",
    args: { input: t.arg({ type: AdjustTokensInput, required: true }) },
    resolve: (_root, { input }, context) =>
      adjustPayload(context, { ...input, userId: String(input.userId) }, context.viewer.userId),
  }),
  transferTokens: t.withAuth({ admin: true }).field({
    type: TransferPayloadRef,
    description:
      "Moves tokens from one user to another: both sides commit together or not at all. Needs the tokens:admin scope.",
    args: { input: t.arg({ type: TransferTokensInput, required: true }) },
    resolve: (_root, { input }, context) => {
      const users = { fromUserId: String(input.fromUserId), toUserId: String(input.toUserId) };
      return transferPayload(context, { ...input, ...users }, context.viewer.userId);
    },
  }),
}));
