import { type Client, createClient } from "graphql-ws/client";
import { errorFromResponse, TokenLedgerError } from "./errors.js";
import { BALANCE_CHANGED_SUBSCRIPTION } from "./operations.js";
import type { TokenSource } from "./token-source.js";
import type { LedgerEntry } from "./types.js";

/** One balanceChanged event: a snapshot (no transaction) or a committed change. */
export interface BalanceChange {
  balance: number;
  delta: number;
  version: number;
  lastUpdated: string;
  transaction: LedgerEntry | null;
}

export interface LiveBalance {
  /** Keeps the subscription open until the returned function is called. */
  retain(): () => void;
  /** Subscribes again after a fatal failure, when someone still retains it. */
  restart(): void;
  dispose(): Promise<void>;
}

interface LiveDeps {
  readonly url: string;
  readonly WebSocket: unknown;
  readonly tokens: TokenSource;
  onChange(change: BalanceChange): void;
  onStatus(live: boolean, error?: TokenLedgerError): void;
}

/** The server's close code for an expired token; graphql-ws retries it, and we refresh first. */
const CLOSE_TOKEN_EXPIRED = 4403;
/** A mobile socket can die without a close event; a ping unanswered this long ends it. */
const PING_INTERVAL_MS = 10_000;
const PONG_TIMEOUT_MS = 5_000;
/** The socket outlives its last subscription this long, so a remount does not reconnect. */
const LINGER_MS = 3_000;

/**
 * The balanceChanged subscription over graphql-ws, shared by everyone who retains it. graphql-ws
 * reconnects after anything but a fatal close (4401 bad token, 4429 blocked address) and
 * resubscribes, and the server then sends the current balance first. The token is read lazily on
 * every connect, refreshed first when the last close said it had expired.
 */
export function createLiveBalance(deps: LiveDeps): LiveBalance {
  let client: Client | undefined;
  let holders = 0;
  let active: (() => void) | undefined;
  let lastCloseCode = 0;
  let generationUsed = 0;
  let pongTimer: ReturnType<typeof setTimeout> | undefined;

  const connectionParams = async () => {
    const expired = lastCloseCode === CLOSE_TOKEN_EXPIRED;
    const seen = generationUsed;
    generationUsed = deps.tokens.generation;
    let token: string | null = null;
    try {
      if (expired) token = await deps.tokens.refresh(seen);
      token ??= await deps.tokens.get();
    } catch (error) {
      throw new TokenLedgerError("UNAUTHENTICATED", `Could not get a fresh token: ${String(error)}`);
    }
    return token ? { authorization: `Bearer ${token}` } : {};
  };

  const open = (): Client =>
    createClient({
      url: deps.url,
      webSocketImpl: deps.WebSocket,
      lazyCloseTimeout: LINGER_MS,
      keepAlive: PING_INTERVAL_MS,
      retryAttempts: Number.POSITIVE_INFINITY,
      // Also retry when the server cannot be reached at all (an error event rather than a close), but
      // not when no token can be had: that needs the app (a new sign-in), not another attempt.
      shouldRetry: (error) => !(error instanceof TokenLedgerError),
      retryWait: (retries) => delay(Math.min(500 * 2 ** retries, 15_000) + Math.random() * 500),
      connectionParams,
      on: {
        connected: () => {
          lastCloseCode = 0;
          deps.onStatus(true);
        },
        closed: (event) => {
          lastCloseCode = (event as { code?: number }).code ?? 0;
          clearTimeout(pongTimer);
          deps.onStatus(false);
        },
        ping: (received) => {
          if (!received) pongTimer = setTimeout(() => client?.terminate(), PONG_TIMEOUT_MS);
        },
        pong: (received) => {
          if (received) clearTimeout(pongTimer);
        },
      },
    });

  function subscribe(): void {
    try {
      client ??= open();
    } catch (error) {
      deps.onStatus(false, new TokenLedgerError("UNEXPECTED", `${String(error)}: pass the WebSocket option`));
      return;
    }
    const stop = client.subscribe<{ balanceChanged: BalanceChange }>(
      { query: BALANCE_CHANGED_SUBSCRIPTION },
      {
        next: (result) => {
          if (result.data) deps.onChange(result.data.balanceChanged);
          else if (active === stop) deps.onStatus(false, errorFromResponse(200, result.errors, null));
        },
        error: (error) => {
          if (active !== stop) return;
          active = undefined;
          deps.onStatus(false, liveError(error));
        },
        complete: () => {
          if (active === stop) active = undefined;
        },
      },
    );
    active = stop;
  }

  return {
    retain() {
      holders += 1;
      if (!active) subscribe();
      let held = true;
      return () => {
        if (!held) return;
        held = false;
        holders -= 1;
        if (holders > 0) return;
        const stop = active;
        active = undefined;
        stop?.();
      };
    },
    restart() {
      if (holders > 0 && !active) subscribe();
    },
    async dispose() {
      holders = 0;
      active?.();
      active = undefined;
      clearTimeout(pongTimer);
      const closing = client?.dispose();
      client = undefined;
      // A client waiting to reconnect settles only after its pause: do not hold the caller for it.
      await Promise.race([closing?.catch(() => undefined), delay(1000)]);
    },
  };
}

/** What a failed subscription means for the app: a close code, GraphQL errors, or a socket error. */
function liveError(error: unknown): TokenLedgerError {
  const close = error as { code?: unknown; reason?: unknown };
  if (typeof close.code === "number") {
    const reason = String(close.reason ?? "");
    if (close.code === 4401) return new TokenLedgerError("UNAUTHENTICATED", reason, false, null, 4401);
    if (close.code === 4429) return new TokenLedgerError("RATE_LIMITED", reason, false, null, 4429);
    return new TokenLedgerError("NETWORK_ERROR", reason || `closed ${close.code}`, true, null, close.code);
  }
  if (error instanceof TokenLedgerError) return error;
  if (Array.isArray(error)) return errorFromResponse(200, error, null);
  return new TokenLedgerError("UNEXPECTED", error instanceof Error ? error.message : String(error));
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
