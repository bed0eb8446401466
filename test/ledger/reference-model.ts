import type { ChangeRequest } from "../../src/modules/ledger/ledger.statements.js";

// A reference model of ledger_apply: the same rules, written as plainly as they can be, in memory.
// It exists only to check the function (test/ledger/ledger-model.test.ts), in the spirit of
// TigerBeetle's reference_model.zig. A rule changed in the function must be changed here too.

export type ModelOutcome =
  | {
      readonly status: "applied";
      readonly userId: string;
      readonly amount: number;
      readonly balanceAfter: number;
      readonly version: number;
    }
  | {
      readonly status: "replay";
      readonly userId: string;
      readonly amount: number;
      readonly available: number;
      readonly requestHash: string | null;
    }
  | { readonly status: "duplicate"; readonly userId: string; readonly amount: number }
  | { readonly status: "insufficient" | "limit" | "rate_limited"; readonly available: number };

interface Entry {
  readonly userId: string;
  readonly amount: number;
  readonly requestHash: string | null;
}

export class LedgerModel {
  private readonly balances = new Map<string, { balance: number; version: number }>();
  private readonly byKey = new Map<string, Entry>();
  private readonly byRef = new Map<string, Entry>();
  /** Fixed-window counters; the tests' windows never end while they run. */
  private readonly counters = new Map<string, number>();

  constructor(private readonly maxBalance: number) {}

  apply(requests: readonly ChangeRequest[]): ModelOutcome[] {
    // A batch first makes the balance of every user it credits (even by a change it then refuses),
    // and counts every request against its counter.
    for (const request of requests) {
      if (request.delta > 0 && !this.balances.has(request.userId))
        this.balances.set(request.userId, { balance: 0, version: 0 });
    }
    const before = new Map(this.counters);
    const place = new Map<string, number>();
    for (const { rateLimit } of requests) {
      if (rateLimit) this.counters.set(rateLimit.key, (this.counters.get(rateLimit.key) ?? 0) + 1);
    }
    return requests.map((request) => {
      if (request.rateLimit) {
        const { key, points } = request.rateLimit;
        place.set(key, (place.get(key) ?? 0) + 1);
        if ((before.get(key) ?? 0) + (place.get(key) ?? 0) > points)
          return { status: "rate_limited", available: this.balanceOf(request.userId) };
      }
      const keyed = request.idempotencyKey ? this.byKey.get(this.keyOf(request)) : undefined;
      if (keyed) {
        const available = this.balanceOf(request.userId);
        return {
          status: "replay",
          userId: keyed.userId,
          amount: keyed.amount,
          available,
          requestHash: keyed.requestHash,
        };
      }
      const referenced = request.externalRef
        ? this.byRef.get(`${request.kind}|${request.externalRef}`)
        : undefined;
      if (referenced) return { status: "duplicate", userId: referenced.userId, amount: referenced.amount };
      return this.move(request);
    });
  }

  private move(request: ChangeRequest): ModelOutcome {
    const row = this.balances.get(request.userId);
    // `0 -` rather than unary minus: no -0 for a refund of nothing.
    const take =
      request.mode === "what_is_left" ? 0 - Math.min(row?.balance ?? 0, -request.delta) : request.delta;
    const balance = (row?.balance ?? 0) + take;
    // With no balance at all there is nothing to update: a debit is insufficient, and a refund of
    // what is left (0) is answered `limit`, as the function's single conditional UPDATE does.
    if (!row || balance < 0 || balance > this.maxBalance)
      return { status: take < 0 ? "insufficient" : "limit", available: row?.balance ?? 0 };
    row.balance = balance;
    row.version += 1;
    const entry = { userId: request.userId, amount: take, requestHash: request.requestHash ?? null };
    if (request.idempotencyKey) this.byKey.set(this.keyOf(request), entry);
    if (request.externalRef) this.byRef.set(`${request.kind}|${request.externalRef}`, entry);
    return {
      status: "applied",
      userId: request.userId,
      amount: take,
      balanceAfter: balance,
      version: row.version,
    };
  }

  private balanceOf(userId: string): number {
    return this.balances.get(userId)?.balance ?? 0;
  }

  private keyOf(request: ChangeRequest): string {
    return `${request.userId}|${request.kind}|${request.idempotencyKey}`;
  }
}
