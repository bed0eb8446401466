import type { Client } from "graphql-ws/client";
import { delay } from "./delay.js";
import { errorFromResponse, TokenLedgerError } from "./errors.js";
import { openLiveSocket } from "./live-socket.js";
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

/**
 * The balanceChanged subscription, shared by everyone who retains it: the first holder subscribes,
 * the last one unsubscribes (the socket lingers a moment for a remount). After a reconnect the
 * server sends the current balance first.
 */
export function createLiveBalance(deps: LiveDeps): LiveBalance {
  let client: Client | undefined;
  let holders = 0;
  let active: (() => void) | undefined;

  function subscribe(): void {
    try {
      client ??= openLiveSocket(deps);
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
    if (close.code === 4401) return new TokenLedgerError("UNAUTHENTICATED", reason, false, null, 4401);
    if (close.code === 4429) return new TokenLedgerError("RATE_LIMITED", reason, false, null, 4429);
    return new TokenLedgerError("NETWORK_ERROR", reason || `closed ${close.code}`, true, null, close.code);
  }
  if (error instanceof TokenLedgerError) return error;
  if (Array.isArray(error)) return errorFromResponse(200, error, null);
  return new TokenLedgerError("UNEXPECTED", error instanceof Error ? error.message : String(error));
}
