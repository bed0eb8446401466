import type { Logger } from "pino";
import type { RevenuecatEvent } from "./revenuecat.event.js";
import type { DeliveryResult } from "./webhook-inbox.js";

/**
 * The line each processed RevenueCat event writes. An unmapped purchase is a warning: a customer paid
 * and got nothing until the product is mapped and the event reprocessed.
 */
export function logOutcome(event: RevenuecatEvent, outcome: DeliveryResult, log: Logger): void {
  const fields = { eventId: event.id, type: event.type, outcome: outcome.outcome, userId: outcome.userId };
  if (outcome.outcome === "credited") {
    const { tokens } = outcome;
    log.info(
      { ...fields, tokens },
      `Successfully processed token purchase: ${tokens} tokens for user ${outcome.userId}`,
    );
  } else if (outcome.outcome === "unmapped") {
    log.warn(
      { ...fields, detail: outcome.detail },
      "purchase not credited: product not in PRODUCT_TOKEN_MAP (map it, then reprocess)",
    );
  } else {
    log.info({ ...fields, detail: outcome.detail }, "RevenueCat event recorded");
  }
}
