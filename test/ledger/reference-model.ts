import type { ChangeRequest } from "../../src/modules/ledger/ledger.statements.js";

// A reference model of ledger_apply: the same rules, written as plainly as they can be, in memory,
// lots included (issue 18). It exists only to check the function (test/ledger/ledger-model.test.ts
// and lots-model.test.ts), in the spirit of TigerBeetle's reference_model.zig. A rule changed in the
// function must be changed here too. Times are milliseconds; `clock` is the batch's one clock.

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
  | { readonly status: "insufficient" | "limit" | "rate_limited"; readonly available: number }
  | {
      readonly status: "expired" | "lot_changed" | "unchanged" | "no_lot";
      readonly available: number;
      readonly expired: number;
    };

interface Entry {
  readonly userId: string;
  readonly amount: number;
  readonly requestHash: string | null;
  /** A REFUND's lot moves, in order, for its reversal. */
  readonly moves?: readonly { lot: ModelLot; amount: number }[];
}

export interface ModelLot {
  readonly id: number;
  readonly userId: string;
  readonly source: string;
  readonly ref: string | null;
  readonly chain: string | null;
  granted: number;
  remaining: number;
  expired: number;
  readonly startsAt: number;
  expiresAt: number | null;
  readonly rollover: { readonly cap: number } | null;
  /** The credit entry that opened it. */
  readonly entry: Entry | null;
}

const time = (value: Date | string | null | undefined): number | null =>
  value == null ? null : new Date(value).getTime();
/** Soonest expiry first, then oldest; never last. */
const drawOrder = (a: ModelLot, b: ModelLot) =>
  (a.expiresAt ?? Number.POSITIVE_INFINITY) - (b.expiresAt ?? Number.POSITIVE_INFINITY) || a.id - b.id;

export class LedgerModel {
  private readonly balances = new Map<string, { balance: number; version: number }>();
  private readonly byKey = new Map<string, Entry>();
  private readonly byRef = new Map<string, Entry>();
  /** Fixed-window counters; the tests' windows never end while they run. */
  private readonly counters = new Map<string, number>();
  readonly lots: ModelLot[] = [];
  private clock = 0;

  constructor(private readonly maxBalance: number) {}

  lotsOf(userId: string): ModelLot[] {
    return this.lots.filter((lot) => lot.userId === userId);
  }

  balanceOf(userId: string): number {
    return this.balances.get(userId)?.balance ?? 0;
  }

  apply(batch: readonly ChangeRequest[], clock = Date.now()): ModelOutcome[] {
    this.clock = clock;
    // A refund, extension or cut hits the lot's owner (or the user of an earlier credit of the batch
    // that opens it); a reversal the refund's (or the earlier refund's of the batch).
    const byLot = batch.map((request, ord) => {
      const op = request.op ?? "change";
      if (op !== "refund" && op !== "extend" && op !== "cut") return request;
      const owner =
        this.lotByRef(request.lot?.ref)?.userId ??
        batch
          .slice(0, ord)
          .find((c) => (c.op ?? "change") === "change" && c.delta > 0 && c.lot?.ref === request.lot?.ref)
          ?.userId;
      return owner === undefined ? request : { ...request, userId: owner };
    });
    const requests = byLot.map((request, ord) => {
      if (request.op !== "reverse_refund") return request;
      const owner =
        this.byRef.get(`REFUND|${request.externalRef}`)?.userId ??
        byLot.slice(0, ord).find((c) => c.op === "refund" && c.externalRef === request.externalRef)?.userId;
      return owner === undefined ? request : { ...request, userId: owner };
    });
    // A batch first makes the balance of every user it credits (even by a change it then refuses),
    // expires the due lots of every user it touches, and counts every request against its counter.
    for (const request of requests) {
      if (request.delta > 0 && !this.balances.has(request.userId))
        this.balances.set(request.userId, { balance: 0, version: 0 });
    }
    const touched = new Map<string, number>();
    for (const userId of new Set(requests.map((request) => request.userId))) this.touch(userId, touched);
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
      const op = request.op ?? "change";
      if (op === "expire") {
        const expired = touched.get(request.userId) ?? 0;
        touched.delete(request.userId);
        return { status: "expired", available: this.balanceOf(request.userId), expired };
      }
      if (op === "extend" || op === "cut") return this.moveEnd(request, op);
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
      const referenced =
        (request.externalRef ? this.byRef.get(`${request.kind}|${request.externalRef}`) : undefined) ??
        (op === "change" && request.delta > 0
          ? (this.lotByRef(request.lot?.ref)?.entry ?? undefined)
          : undefined);
      if (referenced) return { status: "duplicate", userId: referenced.userId, amount: referenced.amount };
      return this.move(request);
    });
  }

  private lotByRef(ref: string | undefined): ModelLot | undefined {
    return ref === undefined ? undefined : this.lots.find((lot) => lot.ref === ref);
  }

  private usable(lot: ModelLot): boolean {
    return lot.expiresAt === null || lot.expiresAt > this.clock;
  }

  /** Expire on touch: the user's due lots, in expiry order, carrying rollover; again for late rollover lots. */
  private touch(userId: string, touched: Map<string, number>): void {
    for (let again = true; again; ) {
      again = false;
      const due = this.lotsOf(userId)
        .filter((lot) => lot.remaining > 0 && lot.expiresAt !== null && lot.expiresAt <= this.clock)
        .sort(drawOrder);
      for (const lot of due) {
        let carry = 0;
        if (lot.rollover && lot.chain !== null) {
          const live = this.lotsOf(userId)
            .filter(
              (r) => r.chain === lot.chain && r.source === "rollover" && r.remaining > 0 && this.usable(r),
            )
            .reduce((sum, r) => sum + r.remaining, 0);
          carry = Math.min(lot.remaining, Math.max(0, lot.rollover.cap - live));
        }
        const lost = lot.remaining - carry;
        let entry: Entry | null = null;
        if (lost > 0) {
          entry = this.write(userId, -lost);
          touched.set(userId, (touched.get(userId) ?? 0) + lost);
        }
        const ends = lot.expiresAt as number;
        lot.expired += lost;
        lot.remaining = 0;
        if (carry > 0) {
          const length = ends - lot.startsAt;
          this.open(userId, "rollover", null, lot.chain, carry, ends, ends + length, null, entry);
          again ||= ends + length <= this.clock;
        }
      }
    }
  }

  private write(userId: string, amount: number): Entry {
    const row = this.balances.get(userId) as { balance: number; version: number };
    row.balance += amount;
    row.version += 1;
    return { userId, amount, requestHash: null };
  }

  private open(
    userId: string,
    source: string,
    ref: string | null,
    chain: string | null,
    amount: number,
    startsAt: number,
    expiresAt: number | null,
    rollover: { cap: number } | null,
    entry: Entry | null,
  ): ModelLot {
    const lot: ModelLot = {
      id: this.lots.length + 1,
      userId,
      source,
      ref,
      chain,
      granted: amount,
      remaining: amount,
      expired: 0,
      startsAt,
      expiresAt,
      rollover,
      entry,
    };
    this.lots.push(lot);
    return lot;
  }

  /** Draws `need` tokens, soonest expiry first; the moves. */
  private draw(userId: string, need: number): { lot: ModelLot; amount: number }[] {
    const moves: { lot: ModelLot; amount: number }[] = [];
    for (const lot of this.lotsOf(userId)
      .filter((l) => l.remaining > 0 && this.usable(l))
      .sort(drawOrder)) {
      if (need === 0) break;
      const n = Math.min(lot.remaining, need);
      lot.remaining -= n;
      need -= n;
      moves.push({ lot, amount: -n });
    }
    if (need > 0) throw new Error(`the model's lots of ${userId} do not cover its balance`);
    return moves;
  }

  /** Expires what is left of each lot now, one EXPIRE each; the tokens it expired. */
  private expireNow(lots: readonly { lot: ModelLot; superseded: boolean }[]): number {
    let total = 0;
    for (const { lot, superseded } of lots) {
      if (superseded) lot.expiresAt = this.clock;
      if (lot.remaining === 0) continue;
      this.write(lot.userId, -lot.remaining);
      total += lot.remaining;
      lot.expired += lot.remaining;
      lot.remaining = 0;
    }
    return total;
  }

  private moveEnd(request: ChangeRequest, op: "extend" | "cut"): ModelOutcome {
    const lot = this.lotByRef(request.lot?.ref);
    const ends = time(request.lot?.expiresAt) as number;
    const available = () => this.balanceOf(request.userId);
    if (!lot || lot.userId !== request.userId)
      return { status: "no_lot", available: available(), expired: 0 };
    if (op === "extend" && lot.expiresAt !== null && ends > lot.expiresAt) {
      lot.expiresAt = ends;
      return { status: "lot_changed", available: available(), expired: 0 };
    }
    if (op === "cut" && ends < (lot.expiresAt ?? Number.POSITIVE_INFINITY)) {
      lot.expiresAt = ends;
      const expired = ends <= this.clock ? this.expireNow([{ lot, superseded: false }]) : 0;
      return { status: "lot_changed", available: available(), expired };
    }
    return { status: "unchanged", available: available(), expired: 0 };
  }

  private move(request: ChangeRequest): ModelOutcome {
    const op = request.op ?? "change";
    const row = this.balances.get(request.userId);
    const balance = row?.balance ?? 0;
    let take = request.delta;
    let fromLot = 0;
    let fromOthers = 0;
    let lot: ModelLot | undefined;
    let refunded: Entry | undefined;
    if (op === "refund") {
      lot = this.lotByRef(request.lot?.ref);
      if (lot && lot.userId !== request.userId) return { status: "no_lot", available: balance, expired: 0 };
      const ratio = request.ratio ?? 1;
      const target = lot ? Math.ceil(lot.granted * ratio) : Math.ceil(Math.max(0, -request.delta) * ratio);
      fromLot = lot ? Math.min(lot.remaining, target) : 0;
      const already = lot ? Math.min(lot.expired, target - fromLot) : 0;
      fromOthers = Math.min(Math.max(0, target - fromLot - already), balance - fromLot);
      take = 0 - (fromLot + fromOthers);
    } else if (op === "reverse_refund") {
      refunded = this.byRef.get(`REFUND|${request.externalRef}`);
      if (refunded && refunded.userId !== request.userId)
        return { status: "no_lot", available: balance, expired: 0 };
      take = refunded ? -refunded.amount : request.delta;
    } else if (request.mode === "what_is_left") {
      // `0 -` rather than unary minus: no -0 for a refund of nothing.
      take = 0 - Math.min(balance, -request.delta);
    }
    const after = balance + take;
    // With no balance at all there is nothing to update: a debit is insufficient, and a refund of
    // what is left (0) is answered `limit`, as the function's single conditional UPDATE does.
    if (!row || after < 0 || after > this.maxBalance)
      return { status: take < 0 ? "insufficient" : "limit", available: balance };
    row.balance = after;
    row.version += 1;
    const version = row.version;
    let moves: { lot: ModelLot; amount: number }[] = [];
    const toExpire: { lot: ModelLot; superseded: boolean }[] = [];
    if (op === "refund") {
      if (lot && fromLot > 0) {
        lot.remaining -= fromLot;
        moves.push({ lot, amount: -fromLot });
      }
      moves = moves.concat(this.draw(request.userId, fromOthers));
    } else if (op === "reverse_refund" && refunded) {
      let left = take;
      for (const move of refunded.moves ?? []) {
        move.lot.remaining -= move.amount;
        left += move.amount;
        if (!this.usable(move.lot)) toExpire.push({ lot: move.lot, superseded: false });
      }
      take = left;
    } else if (take < 0) {
      this.draw(request.userId, -take);
    }
    const entry: Entry = {
      userId: request.userId,
      amount: after - balance,
      requestHash: request.requestHash ?? null,
      moves,
    };
    if (take > 0 && (op === "change" || op === "reverse_refund")) {
      const fields = op === "change" ? request.lot : undefined;
      const source =
        fields?.source ??
        { PURCHASE: "pack", LEGACY_IMPORT: "legacy", REFUND_REVERSAL: "restore" }[request.kind as string] ??
        "grant";
      const expiresAt = time(fields?.expiresAt);
      const opened = this.open(
        request.userId,
        source,
        fields?.ref ?? null,
        fields?.chain ?? null,
        take,
        time(fields?.startsAt) ?? this.clock,
        expiresAt,
        fields?.rollover ?? null,
        entry,
      );
      if (expiresAt !== null && expiresAt <= this.clock) toExpire.push({ lot: opened, superseded: false });
      if (fields?.supersede && fields.chain) {
        for (const other of this.lotsOf(request.userId)
          .filter((l) => l.chain === fields.chain && l !== opened && this.usable(l))
          .sort(drawOrder))
          toExpire.push({ lot: other, superseded: true });
      }
    }
    if (request.idempotencyKey) this.byKey.set(this.keyOf(request), entry);
    if (request.externalRef) this.byRef.set(`${request.kind}|${request.externalRef}`, entry);
    this.expireNow(toExpire);
    return { status: "applied", userId: request.userId, amount: entry.amount, balanceAfter: after, version };
  }

  private keyOf(request: ChangeRequest): string {
    return `${request.userId}|${request.kind}|${request.idempotencyKey}`;
  }
}
