import { type Client, createClient } from "graphql-ws/client";
import { delay } from "./delay.js";
import { TokenLedgerError } from "./errors.js";
import { CloseCode } from "./protocol.js";
import type { TokenSource } from "./token-source.js";

/** A mobile socket can die without a close event; a ping unanswered this long ends it. */
const PING_INTERVAL_MS = 10_000;
const PONG_TIMEOUT_MS = 5_000;
/** The socket outlives its last subscription this long, so a remount does not reconnect. */
const LINGER_MS = 3_000;

/** The longest pause between reconnects, unless the page comes back or the app calls refresh(). */
const MAX_RETRY_WAIT_MS = 15_000;

export interface SocketDeps {
  readonly url: string;
  readonly WebSocket: unknown;
  readonly tokens: TokenSource;
  onStatus(live: boolean): void;
  log(line: string): void;
}

export interface LiveSocket extends Client {
  /**
   * Ends the wait before the next reconnect now (the page came back online or into view, or the app
   * called refresh()). A healthy socket, or one connecting, is left alone.
   */
  reconnectNow(why: string): void;
}

/**
 * A graphql-ws client that retries every close but the fatal ones (4401 bad token, 4429 blocked
 * address: graphql-ws gives those up by itself), with a backoff capped at 15 s, forever, cut short
 * by `reconnectNow`. The token is read on every connect, refreshed first when the last close said it
 * had expired (4403). A ping unanswered within 5 s ends the socket, so a connection that died
 * silently is replaced. Every drop (with its close code and reason), wait and recovery is logged.
 */
export function openLiveSocket(deps: SocketDeps): LiveSocket {
  let lastCloseCode = 0;
  let generationUsed = 0;
  let pongTimer: ReturnType<typeof setTimeout> | undefined;
  let live = false;
  /** When the socket last dropped while live; 0 while it is live or never was. */
  let droppedAt = 0;
  let waiting: ReturnType<typeof delay> | undefined;

  const retryWait = async (retries: number): Promise<void> => {
    const ms = Math.min(500 * 2 ** retries, MAX_RETRY_WAIT_MS) + Math.random() * 500;
    deps.log(`Live updates reconnect in ${seconds(ms)}`);
    waiting = delay(ms);
    await waiting;
    waiting = undefined;
  };

  const connectionParams = async () => {
    // graphql-ws retries an expired token's close; the token is refreshed first.
    const expired = lastCloseCode === CloseCode.TokenExpired;
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
    retryWait,
    connectionParams,
    on: {
      connected: () => {
        lastCloseCode = 0;
        live = true;
        deps.log(
          `Live updates connected${droppedAt ? ` again after ${seconds(Date.now() - droppedAt)}` : ""}`,
        );
        droppedAt = 0;
        deps.onStatus(true);
      },
      closed: (event) => {
        const { code = 0, reason = "" } = event as { code?: number; reason?: string };
        lastCloseCode = code;
        clearTimeout(pongTimer);
        deps.log(`Live updates ${live ? "dropped" : "failed"} (close ${code}${reason && `: ${reason}`})`);
        if (live) droppedAt = Date.now();
        live = false;
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
  return Object.assign(client, {
    reconnectNow(why: string) {
      if (!waiting) return;
      deps.log(`Live updates reconnect now (${why})`);
      waiting.cancel();
      waiting = undefined;
    },
  });
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
