import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { BALANCE_CHANGED, type BalanceChangeEvent } from "./live.js";

/**
 * A balanceChanged subscriber that reconnects like a production client (graphql-ws retries a socket
 * closed with 1001 or dropped), and checks the versions it sees: a live event must follow the
 * previous version with no hole; after a reconnect the server's first event is a snapshot, whose
 * version may be ahead (the changes made while it was away are in that balance).
 */
export class VersionWatch {
  readonly events: BalanceChangeEvent[] = [];
  /** Versions skipped between two live events on one connection: changes never seen. */
  missed = 0;
  /** Versions a reconnect's snapshot caught up on (seen as one balance, not as separate events). */
  bridged = 0;
  connects = 0;
  readonly closeCodes: number[] = [];
  readonly errors: unknown[] = [];
  private last = -1;
  private readonly client;
  private readonly unsubscribe: () => void;

  constructor(url: string, token: string) {
    this.client = createClient({
      url: `${url.replace(/^http/, "ws")}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${token}` },
      lazy: true,
      retryAttempts: Number.POSITIVE_INFINITY,
      shouldRetry: () => true,
      retryWait: () => new Promise((resolve) => setTimeout(resolve, 100)),
      on: {
        connected: () => {
          this.connects += 1;
        },
        closed: (event) => {
          this.closeCodes.push((event as { code: number }).code);
        },
      },
    });
    this.unsubscribe = this.client.subscribe<{ balanceChanged: BalanceChangeEvent }>(
      { query: BALANCE_CHANGED },
      {
        next: (result) => {
          if (result.errors) this.errors.push(result.errors);
          if (result.data) this.see(result.data.balanceChanged);
        },
        error: (error) => this.errors.push(error),
        complete: () => undefined,
      },
    );
  }

  get version(): number {
    return this.last;
  }

  private see(event: BalanceChangeEvent): void {
    this.events.push(event);
    if (this.last >= 0 && event.version > this.last + 1) {
      if (event.transaction === null) this.bridged += event.version - this.last;
      else this.missed += event.version - this.last - 1;
    }
    this.last = Math.max(this.last, event.version);
  }

  /** Waits until the subscriber has seen `version`; whatever it has not seen by then counts as missed. */
  async settle(version: number, timeoutMs = 10_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (this.last < version && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 50));
    if (this.last < version) this.missed += version - Math.max(this.last, 0);
  }

  async close(): Promise<void> {
    this.unsubscribe();
    await this.client.dispose();
  }
}
