import type { BalanceChangeInfo, BalanceReading, BalanceSnapshot } from "./types.js";

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
  /**
   * A server reading; `settled` names spends it is known to include (their entries were seen), and
   * `change` the live change that brought it (shown as lastChange in the same snapshot).
   */
  accept(reading: BalanceReading, settled?: Iterable<string>, change?: BalanceChangeInfo): void;
  /** A reading from storage: shown until the server answers, marked stale. */
  showStale(reading: BalanceReading): void;
  addPending(key: string, amount: number): void;
  /** The mutation's answer: committed with the balance it reported, or refused/failed (rolled back). */
  answer(key: string, reading: BalanceReading | null, committed: boolean): void;
  /** A change that arrived live: kept as lastChange unless a newer one is known. */
  noteChange(change: BalanceChangeInfo): void;
  setFlags(flags: Partial<Flags>): void;
}

/** Everything the store knows; the snapshot is derived from it. */
interface StoreState {
  confirmed: BalanceReading | null;
  stale: boolean;
  /** The newest balance a mutation answered with, held back while another spend is unanswered. */
  held: BalanceReading | null;
  pending: Map<string, PendingSpend>;
  lastChange: BalanceChangeInfo | null;
  flags: Flags;
}

/**
 * The balance the UI shows: the confirmed balance, applied in version order, less the spends in
 * flight. A spend leaves `pending` exactly once: when its own live event arrives (found by its
 * idempotency key), or when a confirmed version includes it. A mutation's answer is shown at once
 * unless another spend is still unanswered: that one might be inside the answer's balance too, and
 * subtracting it again would show too little, so the answer waits until no spend is unanswered.
 */
export function createBalanceStore(onConfirmed: (reading: BalanceReading) => void): BalanceStore {
  const state: StoreState = {
    confirmed: null,
    stale: false,
    held: null,
    pending: new Map(),
    lastChange: null,
    flags: { loading: false, error: null, live: false },
  };
  const listeners = new Set<() => void>();
  let snapshot = snapshotOf(state);
  const emit = () => {
    snapshot = snapshotOf(state);
    for (const listener of [...listeners]) listener();
  };
  const take = (reading: BalanceReading) => {
    if (adopt(state, reading)) onConfirmed(reading);
  };

  return {
    getSnapshot: () => snapshot,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    current: () => ({ reading: state.confirmed, stale: state.stale }),
    hasPending: () => state.pending.size > 0,
    accept(reading, settled = [], change) {
      for (const key of settled) state.pending.delete(key);
      if (change) note(state, change);
      take(reading);
      settle(state, take);
      emit();
    },
    showStale(reading) {
      if (state.confirmed) return;
      state.confirmed = reading;
      state.stale = true;
      emit();
    },
    addPending(key, amount) {
      state.pending.set(key, { amount, includedFrom: null });
      emit();
    },
    answer(key, reading, committed) {
      const spend = state.pending.get(key);
      if (committed && spend && reading) spend.includedFrom = reading.version;
      else state.pending.delete(key);
      if (reading && (!state.held || reading.version > state.held.version)) state.held = reading;
      settle(state, take);
      emit();
    },
    noteChange(change) {
      if (note(state, change)) emit();
    },
    setFlags(patch) {
      state.flags = { ...state.flags, ...patch };
      emit();
    },
  };
}

/** Keeps a live change as the last one unless a newer one is known; says whether it did. */
function note(state: StoreState, change: BalanceChangeInfo): boolean {
  if (state.lastChange && state.lastChange.version >= change.version) return false;
  state.lastChange = change;
  return true;
}

/** Takes a server reading unless it is older than the confirmed one; says whether it did. */
function adopt(state: StoreState, reading: BalanceReading): boolean {
  const { confirmed } = state;
  if (confirmed && !state.stale && reading.version < confirmed.version) return false;
  state.confirmed = reading;
  state.stale = false;
  return true;
}

/** Shows a held answer once no spend is unanswered, and drops the spends the balance includes. */
function settle(state: StoreState, take: (reading: BalanceReading) => void): void {
  const unanswered = [...state.pending.values()].some((spend) => spend.includedFrom === null);
  if (state.held && !unanswered) {
    take(state.held);
    state.held = null;
  }
  const { confirmed } = state;
  for (const [key, spend] of state.pending) {
    if (confirmed && !state.stale && spend.includedFrom !== null && confirmed.version >= spend.includedFrom) {
      state.pending.delete(key);
    }
  }
}

function snapshotOf({ confirmed, stale, pending, lastChange, flags }: StoreState): BalanceSnapshot {
  let inFlight = 0;
  for (const spend of pending.values()) inFlight += spend.amount;
  const expiring = confirmed?.expiring ?? [];
  return {
    balance: confirmed ? Math.max(0, confirmed.balance - inFlight) : null,
    confirmedBalance: confirmed?.balance ?? null,
    available: confirmed ? Math.max(0, confirmed.available - inFlight) : null,
    held: confirmed?.held ?? 0,
    expiring,
    nextExpiry: expiring[0] ?? null,
    lastChange,
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
