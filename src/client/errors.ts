/**
 * What went wrong, as a code the app can branch on. The server's `extensions.code` values keep their
 * names; NETWORK_ERROR means no answer came (the request may or may not have reached the server).
 */
export type TokenLedgerErrorCode =
  | "UNAUTHENTICATED"
  | "RATE_LIMITED"
  | "DATABASE_UNAVAILABLE"
  | "AUTH_UNAVAILABLE"
  | "BAD_USER_INPUT"
  | "NETWORK_ERROR"
  | "UNEXPECTED"
  | "DISPOSED";

export class TokenLedgerError extends Error {
  override readonly name = "TokenLedgerError";

  constructor(
    readonly code: TokenLedgerErrorCode,
    message: string,
    /** Whether the same request may simply be sent again. */
    readonly retryable = false,
    readonly retryAfterSeconds: number | null = null,
    /** The WebSocket close code, for a failure of the live connection. */
    readonly closeCode: number | null = null,
  ) {
    super(message);
  }
}

interface GraphqlErrorBody {
  message?: string;
  extensions?: { code?: string; retryAfterSeconds?: number };
}

/**
 * Turns a GraphQL error list, or an HTTP status without one, into a TokenLedgerError. Only a
 * database outage, the identity provider's keys being unreachable and gateway errors are worth
 * repeating as they are; an expired token needs a new
 * token first, and the rest need a change in the request.
 */
export function errorFromResponse(
  status: number,
  errors: readonly GraphqlErrorBody[] | undefined,
  retryAfterHeader: string | null,
): TokenLedgerError {
  const first = errors?.[0];
  const code = first?.extensions?.code ?? codeOfStatus(status);
  const retryAfter = first?.extensions?.retryAfterSeconds ?? (Number(retryAfterHeader) || null);
  const message = first?.message ?? `HTTP ${status}`;
  switch (code) {
    case "UNAUTHENTICATED":
    case "RATE_LIMITED":
    case "BAD_USER_INPUT":
      return new TokenLedgerError(code, message, false, retryAfter);
    case "DATABASE_UNAVAILABLE":
    case "AUTH_UNAVAILABLE":
    case "NETWORK_ERROR":
      return new TokenLedgerError(code, message, true, retryAfter);
    default:
      return new TokenLedgerError("UNEXPECTED", message);
  }
}

function codeOfStatus(status: number): string {
  if (status === 401) return "UNAUTHENTICATED";
  if (status === 429) return "RATE_LIMITED";
  if (status === 503) return "DATABASE_UNAVAILABLE";
  // A proxy in front of the service answers these while it restarts or stalls. Repeating is safe:
  // reads change nothing and every spend carries its idempotency key.
  if (status === 502 || status === 504) return "NETWORK_ERROR";
  return "UNEXPECTED";
}
