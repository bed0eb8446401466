import type { ZodType } from "zod";

/** Input a door refused before anything was written; every door answers it as a 400 / BAD_USER_INPUT. */
export class InvalidInputError extends Error {
  override readonly name = "InvalidInputError";
}

interface Issue {
  readonly message: string;
  readonly path?: readonly (PropertyKey | { key: PropertyKey })[] | undefined;
}

/** Readable one-line summary of validation issues, naming each field: `amount: must be ...; ...`. */
export function describeIssues(issues: readonly Issue[]): string {
  return issues
    .map((issue) => {
      const path = (issue.path ?? []).map((segment) =>
        String(typeof segment === "object" ? segment.key : segment),
      );
      return path.length > 0 ? `${path.join(".")}: ${issue.message}` : issue.message;
    })
    .join("; ");
}

/** Parses input with a zod schema, or throws InvalidInputError saying what is wrong. */
export function parseInput<T>(schema: ZodType<T>, input: unknown): T {
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw new InvalidInputError(describeIssues(parsed.error.issues));
  return parsed.data;
}
