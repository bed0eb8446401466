import { Repeater, SlidingBuffer } from "graphql-yoga";
import type { Logger } from "pino";
import type { DatabaseHandle, Unlisten } from "../../db/client.js";
import { BALANCE_CHANGED_CHANNEL } from "../ledger/ledger.events.js";
import { type ExpiringTokens, expiringOf } from "../ledger/ledger.lot-queries.js";
import { readBalance } from "../ledger/ledger.queries.js";
import { type BalanceChange, isSnapshot } from "./balance-change.js";
import { type NotifiedChange, parseNotification } from "./balance-notification.js";

export type { BalanceChange } from "./balance-change.js";

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
  /** Per user, the delivery under way: a user's notifications go out one after another, in order. */
  private readonly deliveries = new Map<string, Promise<void>>();
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
          if (!isSnapshot(change) && change.version <= subscriber.lastVersion) return;
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
    const [balance, expiring] = await Promise.all([
      readBalance(this.database, userId),
      this.expiring(userId),
    ]);
    return {
      userId,
      balance: balance.balance,
      held: balance.held,
      delta: 0,
      version: balance.version,
      lastUpdated: balance.lastUpdated ?? new Date(),
      entryId: null,
      kind: null,
      holdId: null,
      expiring,
    };
  }

  /**
   * One notification carries the changes of one committed batch, in order. Each user with
   * subscribers here gets their changes after one read of their expiring tokens (once per
   * notification and instance, whatever the number of subscribers); a user's next notification
   * waits for it, so versions still arrive in order.
   */
  private dispatch(payload: string): void {
    const byUser = new Map<string, NotifiedChange[]>();
    for (const change of parseNotification(payload, this.logger)) {
      if (!this.subscribers.has(change.userId)) continue;
      const changes = byUser.get(change.userId);
      if (changes) changes.push(change);
      else byUser.set(change.userId, [change]);
    }
    for (const [userId, changes] of byUser) {
      const previous = this.deliveries.get(userId) ?? Promise.resolve();
      const delivery = previous
        .then(() => this.deliver(userId, changes))
        .catch((error: unknown) =>
          this.logger.warn({ err: error, userId }, "a balance event was not delivered"),
        );
      this.deliveries.set(userId, delivery);
      void delivery.finally(() => {
        if (this.deliveries.get(userId) === delivery) this.deliveries.delete(userId);
      });
    }
  }

  private async deliver(userId: string, changes: readonly NotifiedChange[]): Promise<void> {
    const expiring = await this.expiring(userId);
    const set = this.subscribers.get(userId);
    if (!set) return;
    for (const notified of changes) {
      const change: BalanceChange = {
        userId,
        balance: notified.balance,
        held: notified.held,
        delta: notified.delta,
        version: notified.version,
        lastUpdated: notified.at,
        entryId: notified.entryId,
        kind: notified.kind ?? null,
        holdId: notified.holdId,
        expiring,
      };
      for (const subscriber of set) subscriber.push(change);
    }
  }

  /** The user's expiring tokens now; undefined when the read failed (the field then reads them itself). */
  private async expiring(userId: string): Promise<readonly ExpiringTokens[] | undefined> {
    try {
      return await expiringOf(this.database.db, userId);
    } catch (error) {
      this.logger.warn({ err: error, userId }, "reading expiring tokens for a balance event failed");
      return undefined;
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
