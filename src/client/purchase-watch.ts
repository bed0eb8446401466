import type { LedgerEntry, PurchaseCreditOptions } from "./types.js";

/** How many purchase credits seen live are remembered, for a wait that starts after its credit. */
const REMEMBERED = 20;

export interface PurchaseWatch {
  /** True while someone waits: re-reads then fetch the newest entries too. */
  waiting(): boolean;
  /** Entries seen live (`live`) or in a re-read of the newest entries. */
  offer(entries: readonly LedgerEntry[], live: boolean): void;
  /**
   * Starts waiting for the purchase credit `options` describe. `baseline` is the server's
   * lastUpdated when the wait began: a re-read entry newer than it is a credit that arrived since.
   */
  watch(options: PurchaseCreditOptions, baseline: string | null): PurchaseWaiter;
  /** Ends every wait without a match. */
  close(): void;
}

export interface PurchaseWaiter {
  /** Resolves with the matching entry, or null once the wait is cancelled. */
  readonly found: Promise<LedgerEntry | null>;
  cancel(): void;
}

type Matcher = (entry: LedgerEntry, receivedAt: number | null) => boolean;

/**
 * Matches RevenueCat credits (PURCHASE entries, credited by the webhook seconds after the app's
 * purchase) with the waits of awaitPurchaseCredit. The store transaction id, when given, is an exact
 * match; otherwise a credit counts when it arrived live since the wait's `since`, or when a re-read
 * shows it committed after the balance the app had when the wait began.
 */
export function createPurchaseWatch(): PurchaseWatch {
  const recent: { entry: LedgerEntry; receivedAt: number }[] = [];
  const waiters = new Set<{ matches: Matcher; resolve: (entry: LedgerEntry | null) => void }>();

  function deliver(entry: LedgerEntry, receivedAt: number | null): void {
    for (const waiter of [...waiters]) {
      if (waiter.matches(entry, receivedAt)) waiter.resolve(entry);
    }
  }

  return {
    waiting: () => waiters.size > 0,
    offer(entries, live) {
      const now = Date.now();
      for (const entry of entries) {
        if (entry.kind !== "PURCHASE") continue;
        if (live) recent.push({ entry, receivedAt: now });
        if (recent.length > REMEMBERED) recent.shift();
        deliver(entry, live ? now : null);
      }
    },
    watch(options, baseline) {
      const matches = matcher(options, baseline, options.since ?? Date.now());
      let waiter!: { matches: Matcher; resolve: (entry: LedgerEntry | null) => void };
      const found = new Promise<LedgerEntry | null>((resolve) => {
        waiter = {
          matches,
          resolve: (entry) => {
            waiters.delete(waiter);
            resolve(entry);
          },
        };
      });
      waiters.add(waiter);
      const early = recent.find((seen) => matches(seen.entry, seen.receivedAt));
      if (early) waiter.resolve(early.entry);
      return { found, cancel: () => waiter.resolve(null) };
    },
    close() {
      for (const waiter of [...waiters]) waiter.resolve(null);
    },
  };
}

function matcher(options: PurchaseCreditOptions, baseline: string | null, since: number): Matcher {
  return (entry, receivedAt) => {
    const metadata = entry.metadata ?? {};
    if (entry.kind !== "PURCHASE") return false;
    if (options.productId && !sameProduct(metadata.productId, options.productId)) return false;
    if (options.storeTransactionId) return metadata.transactionId === options.storeTransactionId;
    if (receivedAt !== null) return receivedAt >= since;
    return baseline === null || Date.parse(entry.createdAt) > Date.parse(baseline);
  };
}

/** Google Play subscriptions arrive as `product:base-plan`; the app may name either form. */
function sameProduct(credited: unknown, wanted: string): boolean {
  return typeof credited === "string" && (credited === wanted || credited.startsWith(`${wanted}:`));
}
