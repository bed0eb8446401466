import type { Logger } from "pino";
import type { Executor } from "../../db/client.js";
import { purchaseRefsOf, storeRefStates } from "../ledger/ledger.reconcile-reads.js";
import type { PurchasePolicyConfig } from "../purchases/purchase.policy.js";
import type { PurchasesService } from "../purchases/purchases.service.js";
import { judge, RECONCILE_OUTCOMES, type ReconcileOutcome, type Verdict } from "./reconcile-outcomes.js";
import {
  creditDelivery,
  creditOutcome,
  refundDelivery,
  refundOutcome,
  type SyntheticDelivery,
} from "./synthetic-delivery.js";
import { storeRefOf, type UpstreamPurchase } from "./upstream-purchase.js";

/**
 * Reconciles what RevenueCat knows against the ledger: every upstream transaction is judged
 * (reconcile-outcomes.ts) and, with `apply`, a missing purchase is delivered to the webhook's own
 * path as a synthetic event (synthetic-delivery.ts); with `refunds` too, a refund the ledger missed
 * is. Nothing else writes: a dry run reads the ledger and nothing more. Transactions are judged in
 * batches, one ledger read per batch.
 */

export type ReconcileInput =
  /** Everything RevenueCat lists for a customer: our purchases it does not list are `not_in_revenuecat`. */
  | { readonly kind: "customer"; readonly userId: string; readonly purchases: readonly UpstreamPurchase[] }
  /** One transaction of an export (which may be incremental: absence proves nothing). */
  | { readonly kind: "purchase"; readonly purchase: UpstreamPurchase }
  | { readonly kind: "not-found"; readonly userId: string }
  | { readonly kind: "unreadable"; readonly id: string; readonly reason: string };

/** One line of the report. */
export interface ReconcileItem {
  readonly outcome: ReconcileOutcome;
  readonly userId: string | null;
  readonly storeRef: string | null;
  readonly productId: string | null;
  readonly tokens: number | null;
  readonly detail: string;
  readonly source: string | null;
}

export interface ReconcileOptions {
  readonly apply: boolean;
  /** With `apply`: take back refunds the ledger missed. */
  readonly refunds: boolean;
  readonly marginMs: number;
  /**
   * With `apply`: credit at most this many purchases in the run; the rest stay `missing_credit`. A
   * guard-rail, so a wrong product map or a wrong export cannot mint tokens in bulk.
   */
  readonly maxCredits?: number;
  readonly now?: number;
  /** Transactions judged per ledger read. */
  readonly batchSize?: number;
  readonly onItem?: (item: ReconcileItem) => void;
  /** Told how many transactions were judged so far, after each batch. */
  readonly onProgress?: (judged: number) => void;
}

export interface ReconcileSummary {
  readonly mode: "dry run" | "apply";
  readonly refunds: boolean;
  readonly counts: Record<ReconcileOutcome, number>;
  /** Tokens credited (in a dry run: missing) and taken back (in a dry run: not taken back). */
  readonly creditedTokens: number;
  readonly clawedBackTokens: number;
  readonly transactions: number;
}

export interface ReconcileDeps {
  readonly db: Executor;
  /** The webhook's path: the ONE call that records and credits (or refunds) a delivery. */
  readonly purchases: Pick<PurchasesService, "handleDelivery">;
  readonly policy: PurchasePolicyConfig;
  readonly logger: Logger;
}

type Work = { purchase: UpstreamPurchase; customer: boolean };
/** A customer read through the API: its store refs as RevenueCat lists them, or not found at all. */
type Customer = { userId: string; refs: Set<string>; found: boolean };

export async function reconcile(
  deps: ReconcileDeps,
  input: AsyncIterable<ReconcileInput>,
  options: ReconcileOptions,
): Promise<ReconcileSummary> {
  const counts = Object.fromEntries(RECONCILE_OUTCOMES.map((o) => [o, 0])) as Record<
    ReconcileOutcome,
    number
  >;
  const tally = { credited: 0, clawedBack: 0, transactions: 0 };
  const report = (item: ReconcileItem) => {
    counts[item.outcome] += 1;
    if (item.outcome === "credited" || item.outcome === "missing_credit") tally.credited += item.tokens ?? 0;
    if (item.outcome === "clawed_back" || item.outcome === "refunded_not_clawed_back")
      tally.clawedBack += item.tokens ?? 0;
    options.onItem?.(item);
  };
  const batchSize = options.batchSize ?? 1_000;
  const budget = { credits: options.maxCredits ?? Number.POSITIVE_INFINITY };
  let work: Work[] = [];
  let customers: Customer[] = [];
  const flush = async () => {
    await judgeBatch(deps, work, customers, { ...options, budget }, report);
    tally.transactions += work.length;
    options.onProgress?.(tally.transactions);
    work = [];
    customers = [];
  };
  for await (const item of input) {
    if (item.kind === "unreadable") {
      report(line("could_not_be_read", null, { userId: item.id, detail: item.reason }));
    } else if (item.kind === "purchase") {
      work.push({ purchase: item.purchase, customer: false });
    } else {
      const purchases = item.kind === "customer" ? item.purchases : [];
      const refs = new Set(purchases.map(storeRefOf).filter(isString));
      customers.push({ userId: item.userId, refs, found: item.kind === "customer" });
      for (const purchase of purchases) work.push({ purchase, customer: true });
    }
    if (work.length >= batchSize || customers.length >= batchSize) await flush();
  }
  await flush();
  return {
    mode: options.apply ? "apply" : "dry run",
    refunds: options.apply && options.refunds,
    counts,
    creditedTokens: tally.credited,
    clawedBackTokens: tally.clawedBack,
    transactions: tally.transactions,
  };
}

/** The run's options, with what is left of --max-credits (shared by the batch's concurrent credits). */
type RunOptions = ReconcileOptions & { readonly budget: { credits: number } };

async function judgeBatch(
  deps: ReconcileDeps,
  work: readonly Work[],
  customers: readonly Customer[],
  options: RunOptions,
  report: (item: ReconcileItem) => void,
): Promise<void> {
  const now = options.now ?? Date.now();
  const refs = work.map((w) => storeRefOf(w.purchase)).filter(isString);
  const states = await storeRefStates(deps.db, refs);
  const judgement = { policy: deps.policy, now, marginMs: options.marginMs };
  await Promise.all(
    work.map(async ({ purchase }) => {
      const ref = storeRefOf(purchase);
      const verdict = judge(purchase, ref === null ? undefined : states.get(ref), judgement);
      report(await carryOut(deps, purchase, verdict, options, now));
    }),
  );
  // Our purchases RevenueCat does not list for the customer, and customers it does not know.
  const ours = await purchaseRefsOf(
    deps.db,
    customers.map((c) => c.userId),
  );
  for (const { userId, refs: listed, found } of customers) {
    const missing = (ours.get(userId) ?? []).filter((ref) => !ref.startsWith("event:") && !listed.has(ref));
    for (const ref of missing) {
      report(
        line("not_in_revenuecat", ref, {
          userId,
          detail: "credited here; RevenueCat lists no such purchase",
        }),
      );
    }
    if (!found && missing.length === 0) {
      report(line("unknown_customer", null, { userId, detail: "RevenueCat has no such customer" }));
    }
  }
}

async function carryOut(
  deps: ReconcileDeps,
  purchase: UpstreamPurchase,
  verdict: Verdict,
  options: RunOptions,
  now: number,
): Promise<ReconcileItem> {
  const base = { userId: purchase.userId, productId: purchase.productId, source: purchase.source };
  const ref = storeRefOf(purchase);
  if ("outcome" in verdict)
    return line(verdict.outcome, ref, { ...base, detail: verdict.detail, tokens: verdict.tokens });
  const { storeRef, tokens } = verdict;
  if (verdict.action === "credit") {
    if (!options.apply)
      return line("missing_credit", storeRef, { ...base, tokens, detail: "dry run: not credited" });
    // Taken before the credit is awaited: the batch's credits run at once and share the budget.
    if (options.budget.credits <= 0) {
      return line("missing_credit", storeRef, {
        ...base,
        tokens,
        detail: "not credited: --max-credits reached",
      });
    }
    options.budget.credits -= 1;
    const result = await deliver(deps, creditDelivery(purchase, storeRef, now));
    return line(creditOutcome(result), storeRef, {
      ...base,
      tokens: result.tokens ?? tokens,
      detail: result.detail,
    });
  }
  if (!options.apply || !options.refunds) {
    const detail = "refunded in RevenueCat; taken back only with --apply --refunds";
    return line("refunded_not_clawed_back", storeRef, { ...base, tokens, detail });
  }
  const result = await deliver(deps, refundDelivery(purchase, storeRef, now));
  return line(refundOutcome(result), storeRef, { ...base, tokens, detail: result.detail });
}

/** The one call into the webhook's path. */
function deliver(deps: ReconcileDeps, delivery: SyntheticDelivery) {
  return deps.purchases.handleDelivery(delivery.rawBody, delivery.event, deps.logger);
}

function line(
  outcome: ReconcileOutcome,
  storeRef: string | null,
  fields: {
    userId: string | null;
    detail: string;
    productId?: string | null;
    tokens?: number | undefined;
    source?: string;
  },
): ReconcileItem {
  return {
    outcome,
    userId: fields.userId,
    storeRef,
    productId: fields.productId ?? null,
    tokens: fields.tokens ?? null,
    detail: fields.detail,
    source: fields.source ?? null,
  };
}

function isString(value: string | null): value is string {
  return value !== null;
}
