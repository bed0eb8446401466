import { delay } from "./delay.js";
import { errorFromResponse, TokenLedgerError } from "./errors.js";
import { type LiveSocket, openLiveSocket } from "./live-socket.js";
import { BALANCE_CHANGED_SUBSCRIPTION } from "./operations.js";
import { listenForPageReturn } from "./page-return.js";
import type { BalanceChangeReason } from "./protocol.js";
import { CloseCode } from "./protocol.js";
import type { TokenSource } from "./token-source.js";
import type { ExpiringTokens, LedgerEntry } from "./types.js";

/** One balanceChanged event: a snapshot, a committed change, or a hold's change (no transaction). */
export interface BalanceChange {
  balance: number;
  held: number;
  expiring: ExpiringTokens[];
  reason: BalanceChangeReason;
  /** The hold behind a HOLD, CAPTURE, RELEASE or HOLD_EXPIRED change. */
  holdId?: string | null;
  delta: number;
  version: number;
  lastUpdated: string;
  transaction: LedgerEntry | null;
}

export interface LiveBalance {
  /** Keeps the subscription open until the returned function is called. */
  retain(): () => void;
  /**
   * Subscribes again after a fatal failure, when someone still retains it; a connection waiting to
   * reconnect does so at once.
   */
  restart(): void;
  dispose(): Promise<void>;
}

interface LiveDeps {
  /** The WebSocket URL, worked out when the socket is first opened (a relative one needs the page). */
  url(): string;
  readonly WebSocket: unknown;
  readonly tokens: TokenSource;
  onChange(change: BalanceChange): void;
  onStatus(live: boolean, error?: TokenLedgerError): void;
  log(line: string): void;
}

/**
 * The balanceChanged subscription, shared by everyone who retains it: the first holder subscribes,
 * the last one unsubscribes (the socket lingers a moment for a remount). After a reconnect the
 * server sends the current balance first. While it is held, a browser page coming back online or
 * into view reconnects a dropped socket at once rather than after its backoff.
 */
export function createLiveBalance(deps: LiveDeps): LiveBalance {
  let client: LiveSocket | undefined;
  let holders = 0;
  let active: (() => void) | undefined;
  let unlistenPage: (() => void) | undefined;

  function subscribe(): void {
    try {
      client ??= openLiveSocket({ ...deps, url: deps.url() });
    } catch (error) {
      const problem =
        error instanceof TokenLedgerError
          ? error
          : new TokenLedgerError("UNEXPECTED", `${String(error)}: pass the WebSocket option`);
      deps.onStatus(false, problem);
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
      unlistenPage ??= listenForPageReturn((why) => client?.reconnectNow(why));
      if (!active) subscribe();
      let held = true;
      return () => {
        if (!held) return;
        held = false;
        holders -= 1;
        if (holders > 0) return;
        unlistenPage?.();
        unlistenPage = undefined;
        const stop = active;
        active = undefined;
        stop?.();
      };
    },
    restart() {
      if (holders > 0 && !active) subscribe();
      else client?.reconnectNow("refresh");
    },
    async dispose() {
      holders = 0;
      unlistenPage?.();
      unlistenPage = undefined;
      active?.();
      active = undefined;
      const closing = client?.dispose();
      client = undefined;
      // A client waiting to reconnect settles only after its pause: do not hold the caller for it.
      const patience = delay(1000);
      await Promise.race([closing?.catch(() => undefined), patience]);
      patience.cancel();
    },
  };
}

/** What a failed subscription means for the app: a close code, GraphQL errors, or a socket error. */
function liveError(error: unknown): TokenLedgerError {
  const close = error as { code?: unknown; reason?: unknown };
  if (typeof close.code === "number") {
    const reason = String(close.reason ?? "");
    if (close.code === CloseCode.Unauthorized)
      return new TokenLedgerError("UNAUTHENTICATED", reason, false, null, close.code);
    if (close.code === CloseCode.RateLimited)
      return new TokenLedgerError("RATE_LIMITED", reason, false, null, close.code);
    return new TokenLedgerError("NETWORK_ERROR", reason || `closed ${close.code}`, true, null, close.code);
  }
  if (error instanceof TokenLedgerError) return error;
  if (Array.isArray(error)) return errorFromResponse(200, error, null);
  return new TokenLedgerError("UNEXPECTED", error instanceof Error ? error.message : String(error));
}
