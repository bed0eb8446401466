import { type Client, createClient } from "graphql-ws";
import WebSocket from "ws";

export const BALANCE_CHANGED = `subscription {
  balanceChanged { balance delta version lastUpdated transaction { id amount kind balanceAfter } }
}`;

export interface BalanceChangeEvent {
  balance: number;
  delta: number;
  version: number;
  lastUpdated: string;
  transaction: { id: string; amount: number; kind: string; balanceAfter: number } | null;
  /** When the query asks for them (issue 18). */
  reason?: string;
  /** When the query asks for it (issue 19). */
  holdId?: string | null;
  held?: number;
  available?: number;
  expiring?: { amount: number; expiresAt: string; sources: string[] }[];
  nextExpiry?: { amount: number; expiresAt: string; sources: string[] } | null;
}

/**
 * A real graphql-ws client over the ws package (Node 20 has no global WebSocket). `headers` go on the
 * upgrade request (such as X-Forwarded-For).
 */
export function wsClient(
  baseUrl: string,
  authorization: string | undefined,
  onClosed?: (code: number, reason: string) => void,
  headers: Record<string, string> = {},
): Client {
  class WebSocketWithHeaders extends WebSocket {
    constructor(address: string, protocols?: string | string[]) {
      super(address, protocols, { headers });
    }
  }
  return createClient({
    url: `${baseUrl.replace(/^http/, "ws")}/graphql`,
    webSocketImpl: WebSocketWithHeaders,
    connectionParams: authorization ? { authorization } : {},
    retryAttempts: 0,
    lazy: true,
    on: {
      closed: (event) => {
        const closeEvent = event as { code: number; reason: string };
        onClosed?.(closeEvent.code, String(closeEvent.reason));
      },
    },
  });
}

/**
 * Subscribes to balanceChanged and buffers what arrives, so a test can wait for the next event or
 * assert that none came.
 */
export class BalanceSubscription {
  readonly events: BalanceChangeEvent[] = [];
  readonly errors: unknown[] = [];
  private waiters: (() => void)[] = [];
  private unsubscribe: () => void;
  private taken = 0;

  constructor(
    readonly client: Client,
    query = BALANCE_CHANGED,
  ) {
    this.unsubscribe = client.subscribe<{ balanceChanged: BalanceChangeEvent }>(
      { query },
      {
        next: (result) => {
          if (result.errors) this.errors.push(result.errors);
          if (result.data) this.events.push(result.data.balanceChanged);
          this.wake();
        },
        error: (error) => {
          this.errors.push(error);
          this.wake();
        },
        complete: () => this.wake(),
      },
    );
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter();
  }

  /** The next event not yet taken, waiting up to `timeoutMs`. */
  async next(timeoutMs = 5000): Promise<BalanceChangeEvent> {
    const deadline = Date.now() + timeoutMs;
    while (this.events.length <= this.taken) {
      if (this.errors.length > 0) throw new Error(`subscription failed: ${JSON.stringify(this.errors)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no balance event within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    const event = this.events[this.taken] as BalanceChangeEvent;
    this.taken += 1;
    return event;
  }

  /** Waits a little and returns whatever arrived that was not yet taken. */
  async drain(waitMs = 300): Promise<BalanceChangeEvent[]> {
    await new Promise((resolve) => setTimeout(resolve, waitMs));
    const rest = this.events.slice(this.taken);
    this.taken = this.events.length;
    return rest;
  }

  async close(): Promise<void> {
    this.unsubscribe();
    await this.client.dispose();
  }
}
