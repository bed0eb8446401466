import type { BalanceStore } from "./balance-store.js";
import type { LiveBalance } from "./live-balance.js";
import type { PurchaseWatch } from "./purchase-watch.js";
import type { BalanceReading, PurchaseCreditOptions, PurchaseCreditResult } from "./types.js";

interface CreditDeps {
  readonly live: LiveBalance;
  readonly store: BalanceStore;
  readonly purchases: PurchaseWatch;
  readonly reread: () => Promise<BalanceReading>;
}

/**
 * After the store's purchase succeeded, waits for RevenueCat's webhook to credit it: resolves
 * "credited" with the entry when it arrives live (or turns up in a re-read after a reconnect or a
 * missed event), or "pending" after `timeoutMs`, once one more read has not found it either. The
 * live connection stays open meanwhile. It rejects only when the balance cannot be read at all.
 */
export async function awaitPurchaseCredit(
  deps: CreditDeps,
  options: PurchaseCreditOptions = {},
): Promise<PurchaseCreditResult> {
  const since = options.since ?? Date.now();
  const release = deps.live.retain();
  try {
    // Credits committed after this balance are new; a stored (stale) balance cannot say which.
    const { reading: known, stale } = deps.store.current();
    const baseline = known && !stale ? known : await deps.reread();
    const waiter = deps.purchases.watch({ ...options, since }, baseline.lastUpdated);
    const timer = setTimeout(() => {
      void deps
        .reread()
        .catch(() => undefined)
        .then(() => waiter.cancel());
    }, options.timeoutMs ?? 30_000);
    const entry = await waiter.found;
    clearTimeout(timer);
    const balance = deps.store.getSnapshot().balance;
    return entry ? { status: "credited", entry, balance } : { status: "pending", balance };
  } finally {
    release();
  }
}
