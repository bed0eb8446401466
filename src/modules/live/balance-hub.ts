import { Repeater, SlidingBuffer } from "graphql-yoga";
import type { Logger } from "pino";
import type { DatabaseHandle, Unlisten } from "../../db/client.js";
import { BALANCE_CHANGED_CHANNEL, type BalanceChangedMessage } from "../ledger/ledger.events.js";
import { readBalance } from "../ledger/ledger.queries.js";

export interface BalanceChange {
  readonly userId: string;
  readonly balance: number;
  readonly delta: number;
  readonly version: number;
  readonly lastUpdated: Date;
  /** Null for a snapshot (the first event, or a re-sync after the listener reconnected). */
  readonly entryId: number | null;
}

interface Subscriber {
  lastVersion: number;
  /** Live events that arrived while the first snapshot was being read; null once it was sent. */
  pending: BalanceChange[] | null;
  push(change: BalanceChange): void;
  resync(): void;
}

/**
 * How many undelivered events one subscriber may hold before the oldest are dropped (the client then
 * sees a version gap and re-reads). Group commit delivers a batch's changes at once, and one batch may
 * hold up to 128 changes of one user, so the buffer takes a few batches' worth; it holds nothing
 * while the subscriber keeps up.
 */
const SUBSCRIBER_BUFFER = 512;

/**
 * Fans committed balance changes out to this instance's subscribers. Every instance LISTENs on the
 * channel that the ledger statement NOTIFYs, so a change committed anywhere reaches everyone, and
 * only once it has committed. Delivery never waits on a subscriber: each has its own sliding buffer.
 */
export class BalanceHub {
  private readonly subscribers = new Map<string, Set<Subscriber>>();
  private unlisten: Unlisten | undefined;
  private connectedOnce = false;

  constructor(
    private readonly database: DatabaseHandle,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    this.unlisten = await this.database.listen(
      BALANCE_CHANGED_CHANNEL,
      (payload) => this.dispatch(payload),
      () => this.onListenerConnected(),
    );
  }

  async stop(): Promise<void> {
    await this.unlisten?.();
    this.unlisten = undefined;
  }

  get subscriberCount(): number {
    let count = 0;
    for (const set of this.subscribers.values()) count += set.size;
    return count;
  }

  /** The user's balance now, then one event per committed change, in version order. */
  subscribe(userId: string): AsyncIterableIterator<BalanceChange> {
    return new Repeater<BalanceChange>(async (push, stop) => {
      const subscriber: Subscriber = {
        lastVersion: -1,
        pending: [],
        push: (change) => {
          if (subscriber.pending) {
            subscriber.pending.push(change);
            return;
          }
          // A re-sync may repeat what was already sent; a version never goes backwards.
          if (change.entryId !== null && change.version <= subscriber.lastVersion) return;
          subscriber.lastVersion = Math.max(subscriber.lastVersion, change.version);
          void push(change);
        },
        resync: () => {
          void this.snapshot(userId).then(
            (change) => {
              subscriber.lastVersion = Math.max(subscriber.lastVersion, change.version);
              void push(change);
            },
            (error: unknown) => this.logger.warn({ err: error, userId }, "balance re-sync failed"),
          );
        },
      };
      this.add(userId, subscriber);
      try {
        const first = await this.snapshot(userId);
        void push(first);
        subscriber.lastVersion = first.version;
        const held = subscriber.pending ?? [];
        subscriber.pending = null;
        for (const change of held) subscriber.push(change);
      } catch (error) {
        stop(error);
      }
      await stop;
      this.remove(userId, subscriber);
    }, new SlidingBuffer(SUBSCRIBER_BUFFER));
  }

  private async snapshot(userId: string): Promise<BalanceChange> {
    const balance = await readBalance(this.database, userId);
    return {
      userId,
      balance: balance.balance,
      delta: 0,
      version: balance.version,
      lastUpdated: balance.lastUpdated ?? new Date(),
      entryId: null,
    };
  }

  /** One notification carries the changes of one committed batch, in order. */
  private dispatch(payload: string): void {
    let messages: BalanceChangedMessage[];
    try {
      messages = JSON.parse(payload) as BalanceChangedMessage[];
    } catch {
      this.logger.warn("ignored a malformed balance notification");
      return;
    }
    for (const message of messages) {
      const set = this.subscribers.get(message.userId);
      if (!set) continue;
      const change: BalanceChange = {
        userId: message.userId,
        balance: message.balance,
        delta: message.delta,
        version: message.version,
        lastUpdated: new Date(message.at),
        entryId: Number(message.entryId),
      };
      for (const subscriber of set) subscriber.push(change);
    }
  }

  /** After the listening connection came back, changes may have been missed: re-send every balance. */
  private onListenerConnected(): void {
    if (!this.connectedOnce) {
      this.connectedOnce = true;
      return;
    }
    this.logger.warn(
      { subscribers: this.subscriberCount },
      "balance listener reconnected; re-syncing subscribers",
    );
    for (const set of this.subscribers.values()) for (const subscriber of set) subscriber.resync();
  }

  private add(userId: string, subscriber: Subscriber): void {
    let set = this.subscribers.get(userId);
    if (!set) {
      set = new Set();
      this.subscribers.set(userId, set);
    }
    set.add(subscriber);
  }

  private remove(userId: string, subscriber: Subscriber): void {
    const set = this.subscribers.get(userId);
    set?.delete(subscriber);
    if (set?.size === 0) this.subscribers.delete(userId);
  }
}
