import { z } from "zod";
import { MAX_BALANCE, MAX_USER_ID_LENGTH } from "../../db/schema.js";
import { isStorableText, UNSTORABLE_TEXT_MESSAGE } from "../../db/text.js";

/** A string that PostgreSQL can store; `name` prefixes the message so the client knows which field. */
export function storableString(name: string) {
  return z
    .string({ error: `${name} must be a string` })
    .refine(isStorableText, { message: `${name} ${UNSTORABLE_TEXT_MESSAGE}` });
}

/** Input limits shared by GraphQL, REST and the service itself, so every door enforces the same rules. */
export const amountSchema = z
  .number({ error: "amount must be a number" })
  .int("amount must be a whole number")
  .min(1, "amount must be at least 1")
  .max(MAX_BALANCE, `amount must be at most ${MAX_BALANCE}`);

export const DESCRIPTION_MAX_LENGTH = 500;
export const IDEMPOTENCY_KEY_MAX_LENGTH = 255;

export const descriptionSchema = storableString("description")
  .trim()
  .min(1, "description must not be empty")
  .max(DESCRIPTION_MAX_LENGTH, `description must be at most ${DESCRIPTION_MAX_LENGTH} characters`);

export const METADATA_MAX_BYTES = 4096;
export const METADATA_MAX_DEPTH = 10;

/**
 * Why a metadata value cannot be stored, or null when it can. Walks the value with a stack of its
 * own rather than recursion, so a document nested thousands of levels deep is refused, not a crash.
 */
export function metadataProblem(value: Record<string, unknown>): string | null {
  const pending: { node: unknown; depth: number }[] = [{ node: value, depth: 1 }];
  while (pending.length > 0) {
    const { node, depth } = pending.pop() as { node: unknown; depth: number };
    if (typeof node === "string") {
      if (!isStorableText(node)) return `metadata values ${UNSTORABLE_TEXT_MESSAGE}`;
      continue;
    }
    if (typeof node !== "object" || node === null) continue;
    if (depth > METADATA_MAX_DEPTH)
      return `metadata must be nested at most ${METADATA_MAX_DEPTH} levels deep`;
    for (const [key, child] of Object.entries(node)) {
      if (!isStorableText(key)) return `metadata keys ${UNSTORABLE_TEXT_MESSAGE}`;
      pending.push({ node: child, depth: depth + 1 });
    }
  }
  if (Buffer.byteLength(JSON.stringify(value)) > METADATA_MAX_BYTES) {
    return `metadata must be at most ${METADATA_MAX_BYTES} bytes of JSON`;
  }
  return null;
}

export const metadataSchema = z
  .record(z.string(), z.unknown(), { error: "metadata must be a JSON object" })
  .superRefine((value, ctx) => {
    const problem = metadataProblem(value);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  });

export const idempotencyKeySchema = storableString("idempotencyKey")
  .min(1, "idempotencyKey must not be empty")
  .max(IDEMPOTENCY_KEY_MAX_LENGTH, `idempotencyKey must be at most ${IDEMPOTENCY_KEY_MAX_LENGTH} characters`);

export const userIdSchema = storableString("userId")
  .min(1, "userId must not be empty")
  .max(MAX_USER_ID_LENGTH, `userId must be at most ${MAX_USER_ID_LENGTH} characters`);

export const spendInputSchema = z.object({
  amount: amountSchema,
  description: descriptionSchema,
  metadata: metadataSchema.nullish(),
  idempotencyKey: idempotencyKeySchema.nullish(),
});
export type SpendInput = z.infer<typeof spendInputSchema>;

export const grantInputSchema = z.object({
  userId: userIdSchema,
  amount: amountSchema,
  reason: descriptionSchema,
  idempotencyKey: idempotencyKeySchema.nullish(),
});
export type GrantInput = z.infer<typeof grantInputSchema>;

/** A signed correction: never 0, at most the balance cap either way. */
export const signedAmountSchema = z
  .number({ error: "amount must be a number" })
  .int("amount must be a whole number")
  .min(-MAX_BALANCE, `amount must be at least -${MAX_BALANCE}`)
  .max(MAX_BALANCE, `amount must be at most ${MAX_BALANCE}`)
  .refine((amount) => amount !== 0, "amount must not be 0");

export const adjustInputSchema = z.object({
  userId: userIdSchema,
  amount: signedAmountSchema,
  reason: descriptionSchema,
  idempotencyKey: idempotencyKeySchema.nullish(),
});
export type AdjustInput = z.infer<typeof adjustInputSchema>;

export const transferInputSchema = z
  .object({
    fromUserId: userIdSchema,
    toUserId: userIdSchema,
    amount: amountSchema,
    reason: descriptionSchema,
    idempotencyKey: idempotencyKeySchema.nullish(),
  })
  .refine((input) => input.fromUserId !== input.toUserId, {
    message: "fromUserId and toUserId must be different users",
    path: ["toUserId"],
  });
export type TransferInput = z.infer<typeof transferInputSchema>;

/** A hold's time to live: 1 s to 24 h (design §C3). */
export const HOLD_MAX_TTL_SECONDS = 86_400;

export const reserveInputSchema = z.object({
  amount: amountSchema,
  ttlSeconds: z
    .number({ error: "ttlSeconds must be a number" })
    .int("ttlSeconds must be a whole number")
    .min(1, "ttlSeconds must be at least 1")
    .max(HOLD_MAX_TTL_SECONDS, `ttlSeconds must be at most ${HOLD_MAX_TTL_SECONDS} (24 hours)`)
    .nullish(),
  description: descriptionSchema.nullish(),
  metadata: metadataSchema.nullish(),
  idempotencyKey: idempotencyKeySchema,
});
export type ReserveInput = z.infer<typeof reserveInputSchema>;

export const captureInputSchema = z.object({
  /** 0 is allowed: a job that used nothing may still capture (an entry of 0) rather than release. */
  amount: z
    .number({ error: "amount must be a number" })
    .int("amount must be a whole number")
    .min(0, "amount must be at least 0")
    .max(MAX_BALANCE, `amount must be at most ${MAX_BALANCE}`),
  overage: z.enum(["REJECT", "CAP"], "overage must be REJECT or CAP").nullish(),
  description: descriptionSchema.nullish(),
  metadata: metadataSchema.nullish(),
});
export type CaptureInput = z.infer<typeof captureInputSchema>;

/** A row id (an entry's, a hold's) is a bigint's decimal digits; anything else names no row. */
export const isRowId = (id: string): boolean => /^[1-9][0-9]{0,17}$/.test(id);
export const isHoldId = isRowId;
