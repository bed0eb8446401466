import { builder } from "../../graphql/builder.js";
import { AMOUNT, BalanceRef, enumOf, KEY, TokenTransactionRef, tokens } from "./ledger.graphql-types.js";
import { HOLD_ERROR_CODES, type HoldErrorCode, type HoldPayload } from "./ledger.holds.payloads.js";
import type { Hold, HoldOverage, HoldStatus } from "./ledger.types.js";
import { DESCRIPTION_MAX_LENGTH, HOLD_MAX_TTL_SECONDS, METADATA_MAX_BYTES } from "./ledger.validation.js";

/** The GraphQL types of holds (issue 19); the operations are in ledger.holds.graphql.ts. */

const STATUS_MEANINGS: Record<HoldStatus, [name: string, meaning: string]> = {
  active: ["ACTIVE", "The tokens are set aside, waiting for a capture or a release."],
  captured: ["CAPTURED", "Captured: one SPEND entry took what the job used, the rest went back."],
  released: ["RELEASED", "Released: every held token went back; nothing was spent."],
  expired: [
    "EXPIRED",
    "Its TTL passed before a capture or a release: every held token went back (a capture is refused).",
  ],
};

export const HoldStatusEnum = builder.enumType("HoldStatus", {
  description: "Where a hold is in its life: ACTIVE, then exactly one of CAPTURED, RELEASED, EXPIRED.",
  values: Object.fromEntries(
    Object.entries(STATUS_MEANINGS).map(([value, [name, description]]) => [name, { value, description }]),
  ) as Record<string, { value: HoldStatus; description: string }>,
});

export const HoldOverageEnum = enumOf<HoldOverage>(
  "HoldOverage",
  "What a capture of more than the hold does.",
  ["REJECT", "CAP"],
  {
    REJECT: "Refuse it with AMOUNT_EXCEEDS_HOLD; nothing changes (the server's default unless configured).",
    CAP: "Capture the hold plus what the free balance can cover, never below zero; the rest is the shortfall.",
  },
);

const HoldErrorCodeEnum = enumOf<HoldErrorCode>(
  "HoldErrorCode",
  "Why a reserve, a capture or a release was refused.",
  HOLD_ERROR_CODES,
  {
    INSUFFICIENT_TOKENS: "The available balance (balance less held) is lower than the amount.",
    TOO_MANY_HOLDS: "The user already has the most active holds allowed (16 unless configured).",
    RATE_LIMITED: "Too many spends and reserves; wait retryAfterSeconds and try again.",
    IDEMPOTENCY_KEY_REUSED: "The idempotency key was used before for a different reserve.",
    INVALID_TTL: `ttlSeconds is not a whole number from 1 to ${HOLD_MAX_TTL_SECONDS} (24 hours).`,
    HOLD_NOT_FOUND: "No such hold, or it is another user's.",
    HOLD_EXPIRED: "The hold's TTL passed; its tokens went back and nothing can be captured.",
    HOLD_RELEASED: "The hold was released; nothing can be captured.",
    HOLD_ALREADY_CAPTURED:
      "The hold was captured already (for another amount, when capturing); it cannot be released.",
    AMOUNT_EXCEEDS_HOLD: "The capture asks for more than the hold, and overage is REJECT.",
  },
);

export const HoldRef = builder.objectRef<Hold>("Hold").implement({
  description:
    "Tokens set aside for a job whose price is known only after it: captured (what the job used), released, or expired at its TTL.",
  fields: (t) => ({
    id: t.exposeID("id", { description: "The hold's id, as captureHold and releaseHold take it." }),
    userId: t.exposeID("userId", { description: "Whose tokens it holds." }),
    amount: t.exposeInt("amount", { description: "Tokens set aside." }),
    status: t.expose("status", { type: HoldStatusEnum, description: "Where the hold is in its life." }),
    captured: t.exposeInt("captured", {
      nullable: true,
      description: "What its capture spent; null unless CAPTURED.",
    }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When it was reserved." }),
    expiresAt: t.expose("expiresAt", {
      type: "DateTime",
      description: "From this instant on it cannot be captured; its tokens go back.",
    }),
    closedAt: t.expose("closedAt", {
      type: "DateTime",
      nullable: true,
      description: "When it was captured, released or expired; null while ACTIVE.",
    }),
    description: t.exposeString("description", { nullable: true, description: "What it was for." }),
    metadata: t.expose("metadata", {
      type: "JSON",
      nullable: true,
      description: "Caller-supplied JSON object.",
    }),
  }),
});

/** The fields every hold payload shares; refusals are data with the balance as it stands. */
function holdPayloadType(name: string, description: string) {
  return builder.objectRef<HoldPayload>(name).implement({
    description,
    fields: (t) => ({
      success: t.exposeBoolean("success", { description: "True when it was done (or replayed)." }),
      message: t.exposeString("message", { description: "A sentence a person can read." }),
      errorCode: t.field({
        type: HoldErrorCodeEnum,
        nullable: true,
        description: "Why it was refused.",
        resolve: (payload) => payload.errorCode,
      }),
      replayed: t.exposeBoolean("replayed", {
        description:
          "True when this repeats an earlier answer (the same key, or the same hold already done).",
      }),
      hold: t.field({
        type: HoldRef,
        nullable: true,
        description: "The hold as it is now; null when there is none (a refused reserve, an unknown hold).",
        resolve: (payload) => payload.hold,
      }),
      balance: t.field({
        type: BalanceRef,
        description: "The balance now (the hold owner's), with held and available, so client caches update.",
        resolve: (payload, _args, context) => context.ledger.balanceOf(payload.userId),
      }),
    }),
  });
}

export const ReserveTokensPayloadRef = holdPayloadType(
  "ReserveTokensPayload",
  "The result of a reserve. Refusals are data: success false, an errorCode, nothing held.",
);
builder.objectField(ReserveTokensPayloadRef, "retryAfterSeconds", (t) =>
  t.exposeInt("retryAfterSeconds", {
    nullable: true,
    description: "With RATE_LIMITED: seconds to wait before reserving again.",
  }),
);

export const CaptureHoldPayloadRef = holdPayloadType(
  "CaptureHoldPayload",
  "The result of a capture: one SPEND entry of the amount, the rest of the hold released.",
);
builder.objectFields(CaptureHoldPayloadRef, (t) => ({
  transaction: t.field({
    type: TokenTransactionRef,
    nullable: true,
    description: "The capture's SPEND entry; the same one on a replay.",
    resolve: (payload) => payload.entry,
  }),
  shortfall: t.exposeInt("shortfall", {
    nullable: true,
    description: "With overage CAP: what was asked beyond the hold that the free balance could not cover.",
  }),
}));

export const ReleaseHoldPayloadRef = holdPayloadType(
  "ReleaseHoldPayload",
  "The result of a release: every held token goes back. Releasing a released or expired hold replays.",
);

export const ReserveTokensInput = builder.inputType("ReserveTokensInput", {
  description: "Tokens to set aside before a job. The idempotencyKey makes a retry return the same hold.",
  fields: (t) => ({
    amount: t.int({ required: true, description: AMOUNT }),
    ttlSeconds: t.int({
      required: false,
      description: `How long the hold lasts before its tokens go back: 1 to ${HOLD_MAX_TTL_SECONDS} seconds; the server's default (600) when absent.`,
    }),
    idempotencyKey: t.string({
      required: true,
      description: `${KEY} A replay returns the same hold with its status now, even EXPIRED.`,
    }),
    description: t.string({ required: false, description: `1 to ${DESCRIPTION_MAX_LENGTH} characters.` }),
    metadata: t.field({
      type: "JSON",
      required: false,
      description: `A JSON object of at most ${METADATA_MAX_BYTES / 1024} KB, kept with the hold.`,
    }),
  }),
});

export const CaptureHoldInput = builder.inputType("CaptureHoldInput", {
  description: "What a job used of its hold. Idempotent by hold: the same amount again replays.",
  fields: (t) => ({
    holdId: t.id({ required: true, description: "The hold's id." }),
    amount: t.int({
      required: true,
      description: `Tokens to spend, 0 to ${tokens}; at most the hold unless overage is CAP.`,
    }),
    overage: t.field({
      type: HoldOverageEnum,
      required: false,
      description: "What a capture above the hold does; the server's default (REJECT) when absent.",
    }),
    description: t.string({
      required: false,
      description: `The SPEND entry's description, 1 to ${DESCRIPTION_MAX_LENGTH} characters.`,
    }),
    metadata: t.field({
      type: "JSON",
      required: false,
      description: "A JSON object kept on the SPEND entry.",
    }),
  }),
});

export const ReleaseHoldInput = builder.inputType("ReleaseHoldInput", {
  description: "A hold to give back whole.",
  fields: (t) => ({ holdId: t.id({ required: true, description: "The hold's id." }) }),
});
