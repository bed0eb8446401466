import type { Logger } from "pino";
import type { Database, DatabaseHandle, Executor } from "../../db/client.js";
import type { GroupCommitOptions } from "../../db/group-commit.js";
import { withRetry } from "../../db/retry.js";
import { BalanceLimitError, isReferenceRace } from "../ledger/ledger.errors.js";
import { hasLegacyImport } from "../ledger/ledger.queries.js";
import type { LedgerService } from "../ledger/ledger.service.js";
import { logOutcome } from "./outcome-log.js";
import { decide, type PurchasePolicyConfig } from "./purchase.policy.js";
import { isSettlement, Settlements } from "./purchase-settlements.js";
import { type RevenuecatEvent, resolveUserId } from "./revenuecat.event.js";
import { createDeliveryWriter, type DeliveryWriter } from "./webhook-deliveries.js";
import {
  BALANCE_LIMIT_DETAIL,
  claimForReprocess,
  type DeliveryResult,
  recordFailure,
  recordReprocessFailure,
  reprocessable,
  deliveryResult as result,
} from "./webhook-inbox.js";

export type { DeliveryResult } from "./webhook-inbox.js";

export interface PurchasesService {
  /**
   * The purchase path's public entry: records one delivery and carries it out (claims the event,
   * holds a purchase back or credits it, refunds, reverses), exactly once per event id however often
   * it is delivered; resolves only after everything it wrote has committed.
   */
  handleDelivery(rawBody: string, event: RevenuecatEvent, log?: Logger): Promise<DeliveryResult>;
  /** Applies a recorded unmapped or failed event again, with today's product map. */
  reprocess(eventId: string, log?: Logger): Promise<DeliveryResult | null>;
  /** Event ids that `reprocess` would pick up. */
  reprocessable(): Promise<string[]>;
  /** Reprocesses every reprocessable event, one at a time; counts what became of them. */
  reprocessAll(log?: Logger): Promise<ReprocessSummary>;
}

export interface ReprocessSummary {
  readonly reprocessed: number;
  /** How many events ended in each outcome ("skipped": another run took it first). */
  readonly outcomes: Record<string, number>;
}

/** After the switch from a subscriber attribute, old app builds may keep writing it. */
export interface LegacyAttributeWatch {
  readonly attribute: string;
  /** Told each delivery that still carries the attribute for a user whose legacy balance was imported. */
  readonly onSeen: (userId: string) => void;
}

/**
 * RevenueCat events in, ledger operations out: each delivery is judged by the policy, then claimed,
 * held back or credited, and recorded by revenuecat_record (webhook-deliveries.ts), the one
 * implementation of the purchase rules. Purchases and plain outcomes go in batches; refunds and
 * reversals in one transaction that is retried as a whole (a serialization failure, a deadlock, or a
 * twin winning the store reference's unique index), as do reprocessing and releasing a held purchase.
 */
export function createPurchasesService(deps: {
  database: Pick<DatabaseHandle, "db" | "query">;
  ledger: LedgerService;
  logger: Logger;
  config: PurchasePolicyConfig;
  legacy?: LegacyAttributeWatch | undefined;
  /** The deliveries' group commit: told the size of every batch, and its queue's bound. */
  writer?: Omit<GroupCommitOptions, "retry">;
}): PurchasesService {
  const deliveries = createDeliveryWriter(deps.database, deps.writer);
  const settlements = new Settlements(deliveries, deps.ledger, deps.config);
  return new Purchases(deps.database.db, deliveries, settlements, deps.logger, deps.config, deps.legacy);
}

class Purchases implements PurchasesService {
  constructor(
    private readonly db: Database,
    private readonly deliveries: DeliveryWriter,
    private readonly settlements: Settlements,
    private readonly logger: Logger,
    private readonly config: PurchasePolicyConfig,
    private readonly legacy: LegacyAttributeWatch | undefined,
  ) {}

  async handleDelivery(rawBody: string, event: RevenuecatEvent, log = this.logger): Promise<DeliveryResult> {
    const decision = decide(event, this.config);
    // Purchases and events that move nothing (nearly every delivery) take one statement, batched with
    // the deliveries that arrive with them; refunds, reversals and a lot's new end take a transaction
    // of their own.
    if (!isSettlement(decision)) {
      return this.recorded(event, await this.deliveries.record({ rawBody, event, decision }), log);
    }
    try {
      const outcome = await this.inTransaction(async (tx) => {
        const claimed = await this.deliveries.recordIn(tx, { rawBody, event, decision: { action: "claim" } });
        if (claimed.outcome === "duplicate") return claimed;
        return this.settlements.settle(tx, event, decision, log);
      });
      return this.recorded(event, outcome, log);
    } catch (error) {
      // A balance at its ceiling will not change by retrying: record it for an operator and answer 200.
      if (error instanceof BalanceLimitError) {
        const outcome = result("failed", BALANCE_LIMIT_DETAIL, resolveUserId(event));
        await recordFailure(this.db, rawBody, event, outcome.detail);
        log.error({ eventId: event.id, userId: outcome.userId }, "purchase not credited: balance limit");
        return outcome;
      }
      await recordFailure(this.db, rawBody, event, "processing failed; RevenueCat will retry").catch(
        () => undefined,
      );
      throw error;
    }
  }

  async reprocess(eventId: string, log = this.logger): Promise<DeliveryResult | null> {
    const claimed: { event: RevenuecatEvent | null } = { event: null };
    let outcome: DeliveryResult;
    try {
      outcome = await this.inTransaction(async (tx) => {
        const kept = await claimForReprocess(tx, eventId);
        claimed.event = kept?.event ?? null;
        if (!kept) return result("duplicate", "not reprocessable");
        const decision = decide(kept.event, this.config);
        if (isSettlement(decision)) return this.settlements.settle(tx, kept.event, decision, log);
        return this.deliveries.recordIn(tx, { ...kept, decision, via: "reprocess" });
      });
    } catch (error) {
      // As for a delivery: a full balance is recorded, and the run goes on to the next event.
      if (!(error instanceof BalanceLimitError) || !claimed.event) throw error;
      await recordReprocessFailure(this.db, eventId, BALANCE_LIMIT_DETAIL);
      outcome = {
        ...result("failed", BALANCE_LIMIT_DETAIL, resolveUserId(claimed.event)),
        atBalanceLimit: true,
      };
    }
    if (!claimed.event) return null;
    return this.recorded(claimed.event, outcome, log, false);
  }

  reprocessable(): Promise<string[]> {
    return reprocessable(this.db);
  }

  async reprocessAll(log = this.logger): Promise<ReprocessSummary> {
    const ids = await reprocessable(this.db);
    const outcomes: Record<string, number> = {};
    for (const eventId of ids) {
      const outcome = (await this.reprocess(eventId, log))?.outcome ?? "skipped";
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    }
    return { reprocessed: ids.length, outcomes };
  }

  /** Logs what became of an event and watches for the legacy attribute; answers the outcome. */
  private async recorded(
    event: RevenuecatEvent,
    outcome: DeliveryResult,
    log: Logger,
    watch = true,
  ): Promise<DeliveryResult> {
    if (outcome.atBalanceLimit) {
      log.error({ eventId: event.id, userId: outcome.userId }, "purchase not credited: balance limit");
    }
    logOutcome(event, outcome, log);
    if (watch && outcome.outcome !== "duplicate") await this.watchLegacyAttribute(event, outcome, log);
    return outcome;
  }
  /**
   * A delivery whose subscriber_attributes still carries the legacy token attribute for a user whose
   * legacy balance was imported means an old app build is still writing it: counted and logged, and
   * never credited (the webhook credits purchases only).
   */
  private async watchLegacyAttribute(
    event: RevenuecatEvent,
    outcome: DeliveryResult,
    log: Logger,
  ): Promise<void> {
    if (!this.legacy) return;
    const attributes = (event as { subscriber_attributes?: unknown }).subscriber_attributes;
    if (typeof attributes !== "object" || attributes === null || !(this.legacy.attribute in attributes))
      return;
    const userId = outcome.userId ?? resolveUserId(event);
    if (!userId || !(await hasLegacyImport(this.db, userId))) return;
    this.legacy.onSeen(userId);
    log.warn(
      { userId, eventId: event.id, attribute: this.legacy.attribute },
      "an imported user's app still writes the legacy token attribute: an old app build is in use",
    );
  }

  /** One transaction, retried as a whole; the only retry loop on this path. */
  private inTransaction(work: (tx: Executor) => Promise<DeliveryResult>): Promise<DeliveryResult> {
    return withRetry(() => this.db.transaction(work), {
      alsoWhen: isReferenceRace,
    });
  }
}
