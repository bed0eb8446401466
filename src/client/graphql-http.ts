import { delay } from "./delay.js";
import { errorFromResponse, TokenLedgerError } from "./errors.js";
import type { TokenSource } from "./token-source.js";
import type { FetchLike } from "./types.js";

/** Attempts of one request when the network or the database fails; then the error is the caller's. */
const MAX_ATTEMPTS = 4;
/** The longest pause between attempts, whatever Retry-After says: a person is waiting. */
const MAX_PAUSE_MS = 2000;

export interface GraphqlHttp {
  request<T>(query: string, variables?: Record<string, unknown>): Promise<T>;
}

interface HttpDeps {
  /** The endpoint, worked out per request (a relative one needs the page's location). */
  url(): string;
  readonly fetch: FetchLike;
  readonly tokens: TokenSource;
  readonly timeoutMs: number;
}

type Outcome = { data: unknown } | { error: TokenLedgerError };

/**
 * GraphQL over HTTP POST with the client's single retry policy: an expired token is refreshed once
 * (shared with concurrent requests) and the request sent again; a lost answer, a timeout or a
 * database outage is sent again, unchanged, a few times. Sending a spend again is safe because it
 * carries the same idempotency key every time.
 */
export function createGraphqlHttp(deps: HttpDeps): GraphqlHttp {
  return {
    async request<T>(query: string, variables?: Record<string, unknown>): Promise<T> {
      const url = deps.url();
      let refreshed = false;
      let fresh: string | null = null;
      for (let attempt = 1; ; attempt += 1) {
        const generation = deps.tokens.generation;
        const token = fresh ?? (await deps.tokens.get());
        const outcome = await send(deps, url, token, JSON.stringify({ query, variables }));
        if ("data" in outcome) return outcome.data as T;
        const { error } = outcome;
        if (error.code === "UNAUTHENTICATED" && !refreshed) {
          refreshed = true;
          fresh = await deps.tokens.refresh(generation).catch(() => null);
          if (fresh) continue;
        }
        if (!error.retryable || attempt >= MAX_ATTEMPTS) throw error;
        await pause(attempt, error.retryAfterSeconds);
      }
    },
  };
}

async function send(deps: HttpDeps, url: string, token: string | null, body: string): Promise<Outcome> {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    accept: "application/graphql-response+json, application/json",
  };
  if (token) headers.authorization = `Bearer ${token}`;
  const controller = typeof AbortController === "function" ? new AbortController() : undefined;
  const timer = setTimeout(() => controller?.abort(), deps.timeoutMs);
  // Called as a plain function, never as a method of `deps`: a browser's own fetch passed in as
  // `window.fetch` throws "Illegal invocation" when called on any object but the global one.
  const fetch = deps.fetch;
  try {
    const response = await fetch(url, {
      method: "POST",
      headers,
      body,
      signal: controller?.signal,
    });
    const parsed = (await response.json().catch(() => null)) as {
      data?: unknown;
      errors?: { message?: string; extensions?: { code?: string } }[];
    } | null;
    if (parsed?.errors?.length || !parsed?.data) {
      return {
        error: errorFromResponse(response.status, parsed?.errors, response.headers.get("retry-after")),
      };
    }
    return { data: parsed.data };
  } catch (cause) {
    const message = cause instanceof Error ? cause.message : String(cause);
    return { error: new TokenLedgerError("NETWORK_ERROR", `No answer from the server: ${message}`, true) };
  } finally {
    clearTimeout(timer);
  }
}

function pause(attempt: number, retryAfterSeconds: number | null): Promise<void> {
  const backoff = 250 * 2 ** (attempt - 1) * (0.75 + Math.random() * 0.5);
  return delay(Math.min(retryAfterSeconds ? retryAfterSeconds * 1000 : backoff, MAX_PAUSE_MS));
}
