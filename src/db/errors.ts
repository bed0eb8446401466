/** The PostgreSQL error behind a failure, or the connection failure that prevented one. */
export interface PgError {
  readonly code: string;
  readonly constraint: string | undefined;
}

export const UNIQUE_VIOLATION = "23505";
export const CHECK_VIOLATION = "23514";
const SERIALIZATION_FAILURE = "40001";
const DEADLOCK_DETECTED = "40P01";

/** postgres.js codes for a connection that could not be made or was lost. */
const CONNECTION_ERROR_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "CONNECTION_ENDED",
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
]);

/**
 * The one walker of an error's cause chain: drizzle wraps driver errors in DrizzleQueryError's
 * `cause`, and GraphQL wraps resolver errors as `originalError`. Returns the first error with a code.
 */
function codedError(
  error: unknown,
): { code: string; constraint?: unknown; constraint_name?: unknown } | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 6 && current; depth += 1) {
    const candidate = current as { code?: unknown; cause?: unknown; originalError?: unknown };
    if (typeof candidate.code === "string") return candidate as { code: string };
    current = candidate.originalError ?? candidate.cause;
  }
  return undefined;
}

/** The SQLSTATE error PostgreSQL raised, if that is what went wrong. */
export function pgErrorOf(error: unknown): PgError | undefined {
  const coded = codedError(error);
  if (!coded || !/^[0-9A-Z]{5}$/.test(coded.code)) return undefined;
  const constraint = coded.constraint_name ?? coded.constraint;
  return { code: coded.code, constraint: typeof constraint === "string" ? constraint : undefined };
}

/** True when the error is a violation of the named unique or check constraint. */
export function violates(
  error: unknown,
  code: typeof UNIQUE_VIOLATION | typeof CHECK_VIOLATION,
  constraint: string,
): boolean {
  const pg = pgErrorOf(error);
  return pg?.code === code && pg.constraint === constraint;
}

/**
 * True when an error means the database cannot be reached (as opposed to a query it refused): the
 * caller answers 503 at once and the pool reconnects by itself when the server is back. SQLSTATE
 * class 08 is a connection exception; 57P0x is an administrator or crash shutdown of the backend.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  const code = codedError(error)?.code;
  return code !== undefined && (CONNECTION_ERROR_CODES.has(code) || /^(08|57P0)/.test(code));
}

/** PostgreSQL aborted the transaction for a conflict that does not recur when it runs again. */
export function isTransientConflict(error: unknown): boolean {
  const code = pgErrorOf(error)?.code;
  return code === SERIALIZATION_FAILURE || code === DEADLOCK_DETECTED;
}
