import { z } from "zod";
import { MAX_BALANCE } from "../../db/schema.js";

/** Input limits shared by GraphQL, REST and the service itself, so every door enforces the same rules. */
export const amountSchema = z
  .number({ error: "amount must be a number" })
  .int("amount must be a whole number")
  .min(1, "amount must be at least 1")
  .max(MAX_BALANCE, `amount must be at most ${MAX_BALANCE}`);

export const descriptionSchema = z
  .string({ error: "description must be a string" })
  .trim()
  .min(1, "description must not be empty")
  .max(500, "description must be at most 500 characters");

export const METADATA_MAX_BYTES = 4096;

export const metadataSchema = z
  .record(z.string(), z.unknown(), { error: "metadata must be a JSON object" })
  .refine((value) => Buffer.byteLength(JSON.stringify(value)) <= METADATA_MAX_BYTES, {
    message: `metadata must be at most ${METADATA_MAX_BYTES} bytes of JSON`,
  });

export const idempotencyKeySchema = z
  .string({ error: "idempotencyKey must be a string" })
  .min(1, "idempotencyKey must not be empty")
  .max(255, "idempotencyKey must be at most 255 characters");

export const userIdSchema = z
  .string({ error: "userId must be a string" })
  .min(1, "userId must not be empty")
  .max(255, "userId must be at most 255 characters");

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

/** Readable one-line summary of a validation failure, for REST bodies and GraphQL messages. */
export function describeIssues(
  issues: readonly { message: string; path?: readonly (PropertyKey | { key: PropertyKey })[] | undefined }[],
): string {
  return issues
    .map((issue) => {
      const path = (issue.path ?? []).map((segment) =>
        String(typeof segment === "object" ? segment.key : segment),
      );
      return path.length > 0 ? `${path.join(".")}: ${issue.message}` : issue.message;
    })
    .join("; ");
}
