import type { BalanceReading, BalanceSnapshot } from "./types.js";

/**
 * A spend sent but not yet part of the confirmed balance. `includedFrom` is set by the mutation's
 * answer: the balance version from which the spend is certainly included (the answer's own).
 */
interface PendingSpend {
  amount: number;
  includedFrom: number | null;
}

type Flags = Pick<BalanceSnapshot, "loading" | "error" | "live">;

export interface BalanceStore {
  getSnapshot(): BalanceSnapshot;
  subscribe(listener: () => void): () => void;
  /** The confirmed reading, and whether it only came from storage. */
  current(): { reading: BalanceReading | null; stale: boolean };
  hasPending(): boolean;
  /** A server reading; `settled` names spends it is known to include (their entries were seen). */
  accept(reading: BalanceReading, settled?: Iterable<string>): void;
  /** A reading from storage: shown until the server answers, marked stale. */
  showStale(reading: BalanceReading): void;
  addPending(key: string, amount: number): void;
  /** The mutation's answer: committed with the balance it reported, or refused/failed (rolled back). */
  answer(key: string, reading: BalanceReading | null, committed: boolean): void;
  setFlags(flags: Partial<Flags>): void;
}

/**
 * The balance the UI shows: the confirmed balance, applied in version order, less the spends in
 * flight. A spend leaves `pending` exactly once: when its own live event arrives (found by its
 * idempotency key), or when a confirmed version includes it. A mutation's answer is shown at once
 * unless another spend is still unanswered: that one might be inside the answer's balance too, and
 * subtracting it again would show too little, so the answer waits until no spend is unanswered.
 */
export function createBalanceStore(onConfirmed: (reading: BalanceReading) => void): BalanceStore {
  let confirmed: BalanceReading | null = null;
  let stale = false;
  let held: BalanceReading | null = null;
  const pending = new Map<string, PendingSpend>();
  const listeners = new Set<() => void>();
  let flags: Flags = { loading: false, error: null, live: false };
  let snapshot = build();

  function build(): BalanceSnapshot {
    let inFlight = 0;
    for (const spend of pending.values()) inFlight += spend.amount;
    return {
      balance: confirmed ? Math.max(0, confirmed.balance - inFlight) : null,
      confirmedBalance: confirmed?.balance ?? null,
      pending: inFlight,
      version: confirmed?.version ?? null,
      lastUpdated: confirmed?.lastUpdated ?? null,
      stale,
      // Nothing to show yet: loading, unless the last attempt failed and nothing is being tried now.
      loading: !confirmed && (flags.loading || !flags.error),
      error: flags.error,
      live: flags.live,
    };
  }

  function emit(): void {
    snapshot = build();
    for (const listener of [...listeners]) listener();
  }

  function take(reading: BalanceReading): void {
    if (confirmed && !stale && reading.version < confirmed.version) return;
    confirmed = reading;
    stale = false;
    onConfirmed(reading);
  }

  function settle(): void {
    const unanswered = [...pending.values()].some((spend) => spend.includedFrom === null);
    if (held && !unanswered) {
      take(held);
      held = null;
    }
    for (const [key, spend] of pending) {
      if (confirmed && !stale && spend.includedFrom !== null && confirmed.version >= spend.includedFrom) {
        pending.delete(key);
      }
    }
  }

  return {
    getSnapshot: () => snapshot,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    current: () => ({ reading: confirmed, stale }),
    hasPending: () => pending.size > 0,
    accept(reading, settled = []) {
      for (const key of settled) pending.delete(key);
      take(reading);
      settle();
      emit();
    },
    showStale(reading) {
      if (confirmed) return;
      confirmed = reading;
      stale = true;
      emit();
    },
    addPending(key, amount) {
      pending.set(key, { amount, includedFrom: null });
      emit();
    },
    answer(key, reading, committed) {
      const spend = pending.get(key);
      if (committed && spend && reading) spend.includedFrom = reading.version;
      else pending.delete(key);
      if (reading && (!held || reading.version > held.version)) held = reading;
      settle();
      emit();
    },
    setFlags(patch) {
      flags = { ...flags, ...patch };
      emit();
    },
  };
}
