import type { Logger } from "pino";
import type { Executor } from "../../db/client.js";
import { MAX_BALANCE } from "../../db/schema.js";
import { BalanceLimitError } from "../ledger/ledger.errors.js";
import type { LedgerService, LotEndResult } from "../ledger/ledger.service.js";
import { productEntry } from "./product-config.js";
import { decide } from "./purchase.policy.js";
import type { Decision, PurchasePolicyConfig } from "./purchase-decision.js";
import { purchaseMetadata, type RevenuecatEvent, resolveUserId } from "./revenuecat.event.js";
import type { DeliveryWriter } from "./webhook-deliveries.js";
import {
  type DeliveryResult,
  finish,
  heldPurchase,
  isWaiting,
  lockStoreTransaction,
  paidPrice,
  deliveryResult as result,
} from "./webhook-inbox.js";

/** The events carried out in a transaction of their own, after their claim, under the store transaction's lock. */
export type Settlement = Extract<Decision, { action: "refund" | "reverse" | "extend" | "cut" }>;

export function isSettlement(decision: Decision): decision is Settlement {
  return (
    decision.action === "refund" ||
    decision.action === "reverse" ||
    decision.action === "extend" ||
    decision.action === "cut"
  );
}

/**
 * Refunds, their reversals, and a subscription lot's new end (SUBSCRIPTION_EXTENDED, an early
 * EXPIRATION): each carried out and recorded in the caller's transaction, after the event's claim.
 */
export class Settlements {
  constructor(
    private readonly deliveries: DeliveryWriter,
    private readonly ledger: LedgerService,
    private readonly config: PurchasePolicyConfig,
  ) {}

  async settle(
    tx: Executor,
    event: RevenuecatEvent,
    decision: Settlement,
    log: Logger,
  ): Promise<DeliveryResult> {
    const settled = await this.carryOut(tx, event, decision, log);
    await finish(tx, event.id, settled);
    return settled;
  }

  private carryOut(tx: Executor, event: RevenuecatEvent, decision: Settlement, log: Logger) {
    switch (decision.action) {
      case "refund":
        return this.refund(tx, event, decision.storeRef, log);
      case "reverse":
        return this.reverse(tx, event, decision.storeRef);
      case "extend":
      case "cut":
        return this.moveLotEnd(tx, event, decision);
    }
  }

  private async refund(tx: Executor, event: RevenuecatEvent, storeRef: string | null, log: Logger) {
    if (!storeRef) return result("unmatched", "no credited purchase for transaction (none)");
    await lockStoreTransaction(tx, storeRef);
    if (await isWaiting(tx, event, "REFUND_REVERSED")) {
      return result("ignored", `the refund of ${storeRef} was reversed before it arrived`);
    }
    const metadata = purchaseMetadata(event);
    const ratio = await this.refundRatio(tx, event);
    const refunded = await this.ledger.refundPurchase(
      { storeRef, metadata, ...(ratio < 1 ? { ratio } : {}) },
      { executor: tx },
    );
    if (refunded.status === "no-purchase") {
      return result("unmatched", `no credited purchase for transaction ${storeRef}`);
    }
    const { entry } = refunded;
    if (refunded.status === "duplicate") {
      return result("duplicate", `transaction ${storeRef} already refunded`, entry.userId, entry.id);
    }
    const { purchase, recovered, shortfall } = refunded;
    if (shortfall > 0) {
      log.warn(
        { userId: purchase.userId, refundedTokens: purchase.amount, recovered, shortfall, eventId: event.id },
        "refund could not recover every token: they were already spent",
      );
    }
    return result(
      "refunded",
      `took back ${recovered} of ${purchase.amount} tokens`,
      purchase.userId,
      entry.id,
    );
  }

  /**
   * The refunded share of a subscription period: RevenueCat removes a prorated part of a period's
   * grant, by the refunded price over the price paid (the ledger rounds the tokens up). A pack, or a
   * price unknown on either side, is refunded whole.
   */
  private async refundRatio(tx: Executor, event: RevenuecatEvent): Promise<number> {
    if (productEntry(this.config.productTokenMap, event.product_id)?.kind !== "subscription") return 1;
    if (typeof event.price !== "number" || event.price >= 0) return 1;
    const paid = await paidPrice(tx, event);
    if (paid === null || paid <= 0) return 1;
    return Math.min(1, -event.price / paid);
  }

  private async reverse(
    tx: Executor,
    event: RevenuecatEvent,
    storeRef: string | null,
  ): Promise<DeliveryResult> {
    if (!storeRef) return result("unmatched", "no refund for transaction (none)");
    await lockStoreTransaction(tx, storeRef);
    const metadata = purchaseMetadata(event);
    const reversed = await this.ledger.reverseRefund({ storeRef, metadata }, { executor: tx });
    if (reversed.status === "reversed") {
      const { entry, refund } = reversed;
      return result("refund_reversed", `gave back ${-refund.amount} tokens`, entry.userId, entry.id);
    }
    if (reversed.status === "duplicate") {
      const { entry } = reversed;
      return result("duplicate", `refund of ${storeRef} already reversed`, entry.userId, entry.id);
    }
    // The refund came before its purchase and held it back; with the refund reversed, the purchase is
    // credited after all (by the purchase path's own statement), and its own record says so. A full
    // balance rolls the whole reversal back, to be recorded as failed and tried again.
    const held = await heldPurchase(tx, event);
    const decision = held ? decide(held.event, this.config) : null;
    if (!held || decision?.action !== "credit")
      return result("unmatched", `no refund for transaction ${storeRef}`);
    const credited = await this.deliveries.recordIn(tx, { ...held, decision, via: "release" });
    if (credited.atBalanceLimit) throw new BalanceLimitError(MAX_BALANCE, decision.tokens);
    return result(
      "refund_reversed",
      `refund reversed: ${credited.detail}`,
      credited.userId,
      credited.ledgerEntryId,
    );
  }

  /**
   * SUBSCRIPTION_EXTENDED moves the period lot's end later; an EXPIRATION earlier than the lot's end
   * cuts it, expiring its unused tokens now. Neither credits anything; an event for a store
   * transaction that opened no lot (a trial of 0 tokens, a temporary entitlement) changes nothing.
   */
  private async moveLotEnd(
    tx: Executor,
    event: RevenuecatEvent,
    decision: Extract<Settlement, { action: "extend" | "cut" }>,
  ): Promise<DeliveryResult> {
    const { storeRef, expiresAt } = decision;
    await lockStoreTransaction(tx, storeRef);
    const change = { storeRef, expiresAt: new Date(expiresAt) };
    const moved =
      decision.action === "extend"
        ? await this.ledger.extendLot(change, { executor: tx })
        : await this.ledger.cutLot(change, { executor: tx });
    return lotChangeResult(event, decision.action, storeRef, expiresAt, moved);
  }
}

/** What a lot's new end came to, for the delivery's record. */
function lotChangeResult(
  event: RevenuecatEvent,
  action: "extend" | "cut",
  storeRef: string,
  expiresAt: string,
  change: LotEndResult,
): DeliveryResult {
  const userId = resolveUserId(event);
  if (change.status === "no-lot")
    return result("ignored", `${event.type}: no lot for transaction ${storeRef}`);
  if (change.status === "unchanged") {
    const already = action === "extend" ? "already ends at or after" : "already ends at or before";
    return result("ignored", `${event.type}: the lot of ${storeRef} ${already} ${expiresAt}`, userId);
  }
  if (action === "extend")
    return result("extended", `the lot of ${storeRef} now ends at ${expiresAt}`, userId);
  return result(
    "cut",
    `the lot of ${storeRef} ended at ${expiresAt}; ${change.expired} tokens expired`,
    userId,
  );
}
