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

/** Which schema produced each object parseInput returned: handing one on (door → service) to be
 * parsed with the same schema again costs nothing. */
const validated = new WeakMap<object, ZodType>();

/** Parses input with a zod schema, or throws InvalidInputError saying what is wrong. */
export function parseInput<T>(schema: ZodType<T>, input: unknown): T {
  if (typeof input === "object" && input !== null && validated.get(input) === schema) return input as T;
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw new InvalidInputError(describeIssues(parsed.error.issues));
  if (typeof parsed.data === "object" && parsed.data !== null) validated.set(parsed.data, schema);
  return parsed.data;
}
