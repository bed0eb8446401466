import { createLocalJWKSet, type JWTVerifyGetKey, errors as joseErrors } from "jose";

/** Why the identity provider's key set could not be had: a metric label and a log field. */
export type KeySetFailureReason = "network" | "timeout" | "http_status" | "invalid";
export const KEY_SET_FAILURE_REASONS: readonly KeySetFailureReason[] = [
  "network",
  "timeout",
  "http_status",
  "invalid",
];

/** The token may well be valid, but its key cannot be fetched: the client should try again, not sign in again. */
export class AuthUnavailableError extends Error {
  override readonly name = "AuthUnavailableError";
  constructor(readonly retryAfterSeconds: number) {
    super("The identity provider's signing keys cannot be fetched; try again shortly");
  }
}

export class KeySetFetchError extends Error {
  override readonly name = "KeySetFetchError";
  constructor(
    readonly reason: KeySetFailureReason,
    message: string,
  ) {
    super(message);
  }
}

export interface KeySetStatus {
  /** False from a failed fetch until the next one succeeds. */
  readonly reachable: boolean;
  /** Keys this instance can verify with (the last good fetch, however old). */
  readonly keys: number;
  readonly fetchedAt: string | null;
  readonly failingSince: string | null;
  readonly lastError: string | null;
}

export interface RemoteKeySet {
  /** For jose's jwtVerify: the key for a token's `kid`/`alg`. Throws AuthUnavailableError in an outage. */
  readonly getKey: JWTVerifyGetKey;
  /** Counts changes of the key set's content: a verification remembered under an older one is redone. */
  generation(): number;
  /** Fetches again when the keys are older than their maximum age; never throws (old keys stay). */
  refreshIfDue(): Promise<void>;
  status(): KeySetStatus;
}

export interface KeySetOptions {
  readonly url: string;
  /** How long one fetch may take. */
  readonly timeoutMs?: number;
  /** Keys older than this are fetched again before use, so a key removed at the provider stops verifying. */
  readonly maxAgeMs?: number;
  /** A token with an unknown `kid` fetches the set again at most this often (a forged kid costs no fetch). */
  readonly cooldownMs?: number;
  /** After a failed fetch, the next attempt waits this long; the old keys serve meanwhile. */
  readonly retryMs?: number;
  readonly onFailure?: (error: KeySetFetchError) => void;
  readonly onRecovered?: (downForMs: number) => void;
}

type LocalKeySet = ReturnType<typeof createLocalJWKSet>;

/**
 * The provider's JWKS, fetched and kept. Unlike jose's createRemoteJWKSet, whose stale cache throws
 * when a refresh fails, the last good keys keep verifying through an outage (a token they verify was
 * signed by the provider), and a failure is reported apart from a bad token, so the caller can answer
 * "try again" instead of "sign in again".
 */
export function createRemoteKeySet(options: KeySetOptions): RemoteKeySet {
  const { url, timeoutMs = 5_000, maxAgeMs = 600_000, cooldownMs = 30_000, retryMs = 5_000 } = options;
  let local: LocalKeySet | undefined;
  let content = "";
  let generation = 0;
  let keyCount = 0;
  let fetchedAt = 0;
  let attemptedAt = 0;
  let failingSince = 0;
  let lastError: KeySetFetchError | undefined;
  let pending: Promise<void> | undefined;

  const retryAfterSeconds = () => Math.max(1, Math.ceil((attemptedAt + retryMs - Date.now()) / 1000));

  async function fetchOnce(): Promise<void> {
    attemptedAt = Date.now();
    try {
      const json = await fetchKeySet(url, timeoutMs);
      const next = toLocalKeySet(json);
      const text = JSON.stringify(json);
      if (text !== content) generation += 1;
      content = text;
      local = next;
      keyCount = (json as { keys: unknown[] }).keys.length;
      fetchedAt = Date.now();
      if (failingSince) options.onRecovered?.(fetchedAt - failingSince);
      failingSince = 0;
      lastError = undefined;
    } catch (error) {
      lastError = error instanceof KeySetFetchError ? error : new KeySetFetchError("network", String(error));
      failingSince ||= attemptedAt;
      options.onFailure?.(lastError);
    }
  }

  const load = () => {
    pending ??= fetchOnce().finally(() => {
      pending = undefined;
    });
    return pending;
  };

  async function refreshIfDue(): Promise<void> {
    const now = Date.now();
    if (lastError) {
      if (now - attemptedAt < retryMs) return;
      // In an outage the old keys answer at once; only an instance with none waits for the attempt.
      if (local) void load();
      else await load();
      return;
    }
    if (!local || now - fetchedAt >= maxAgeMs) await load();
  }

  const getKey: JWTVerifyGetKey = async (header, token) => {
    await refreshIfDue();
    if (!local) throw new AuthUnavailableError(retryAfterSeconds());
    try {
      return await local(header, token);
    } catch (error) {
      if (!(error instanceof joseErrors.JWKSNoMatchingKey)) throw error;
      // A key this instance has not seen: the provider may have rotated, or the kid is made up.
      if (lastError) throw new AuthUnavailableError(retryAfterSeconds());
      if (Date.now() - attemptedAt < cooldownMs) throw error;
      await load();
      if (lastError) throw new AuthUnavailableError(retryAfterSeconds());
      return local(header, token);
    }
  };

  return {
    getKey,
    generation: () => generation,
    refreshIfDue,
    status: () => ({
      reachable: !lastError,
      keys: keyCount,
      fetchedAt: fetchedAt ? new Date(fetchedAt).toISOString() : null,
      failingSince: failingSince ? new Date(failingSince).toISOString() : null,
      lastError: lastError ? `${lastError.reason}: ${lastError.message}` : null,
    }),
  };
}

/** One GET of the key set; every way it can fail becomes a KeySetFetchError with its reason. */
async function fetchKeySet(url: string, timeoutMs: number): Promise<unknown> {
  const signal = AbortSignal.timeout(timeoutMs);
  let response: Response;
  try {
    // Redirects are not followed (as jose does): a key set is served where it is configured.
    response = await fetch(url, {
      signal,
      redirect: "manual",
      headers: { accept: "application/json, application/jwk-set+json" },
    });
  } catch (cause) {
    if (signal.aborted) throw new KeySetFetchError("timeout", `no answer within ${timeoutMs} ms`);
    throw new KeySetFetchError("network", describeNetworkError(cause));
  }
  if (response.status !== 200) {
    await response.body?.cancel().catch(() => undefined);
    throw new KeySetFetchError("http_status", `HTTP ${response.status} from the key set URL`);
  }
  try {
    return await response.json();
  } catch {
    if (signal.aborted) throw new KeySetFetchError("timeout", `no complete answer within ${timeoutMs} ms`);
    throw new KeySetFetchError("invalid", "the key set URL did not answer JSON");
  }
}

function toLocalKeySet(json: unknown): LocalKeySet {
  try {
    return createLocalJWKSet(json as Parameters<typeof createLocalJWKSet>[0]);
  } catch {
    throw new KeySetFetchError("invalid", "the key set URL did not answer a JSON Web Key Set");
  }
}

/** fetch says only "fetch failed"; the cause (ECONNREFUSED, ENOTFOUND, a TLS error) is what helps. */
function describeNetworkError(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const detail = cause?.code ?? cause?.message;
  const message = error instanceof Error ? error.message : String(error);
  return detail ? `${message}: ${detail}` : message;
}
