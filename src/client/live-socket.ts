import { type Client, createClient } from "graphql-ws/client";
import { delay } from "./delay.js";
import { TokenLedgerError } from "./errors.js";
import type { TokenSource } from "./token-source.js";

/** The server's close code for an expired token; graphql-ws retries it, and we refresh first. */
const CLOSE_TOKEN_EXPIRED = 4403;
/** A mobile socket can die without a close event; a ping unanswered this long ends it. */
const PING_INTERVAL_MS = 10_000;
const PONG_TIMEOUT_MS = 5_000;
/** The socket outlives its last subscription this long, so a remount does not reconnect. */
const LINGER_MS = 3_000;

export interface SocketDeps {
  readonly url: string;
  readonly WebSocket: unknown;
  readonly tokens: TokenSource;
  onStatus(live: boolean): void;
}

/**
 * A graphql-ws client that retries every close but the fatal ones (4401 bad token, 4429 blocked
 * address: graphql-ws gives those up by itself), with a backoff capped at 15 s, forever. The token
 * is read on every connect, refreshed first when the last close said it had expired (4403). A
 * ping unanswered within 5 s ends the socket, so a connection that died silently is replaced.
 */
export function openLiveSocket(deps: SocketDeps): Client {
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

  const client: Client = createClient({
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
        if (!received) pongTimer = setTimeout(() => client.terminate(), PONG_TIMEOUT_MS);
      },
      pong: (received) => {
        if (received) clearTimeout(pongTimer);
      },
    },
  });
  return client;
}
