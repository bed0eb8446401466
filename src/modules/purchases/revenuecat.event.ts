import { z } from "zod";
import { isStorableText, UNSTORABLE_TEXT_MESSAGE } from "../../db/text.js";

/**
 * The fields of a RevenueCat delivery that we act on. RevenueCat adds fields and event types without
 * notice, so every other key is kept as is and unknown types are accepted; fields the docs call
 * guaranteed are still optional here because real samples lack them (TEMPORARY_ENTITLEMENT_GRANT).
 */
/** A string we may store in a column: one PostgreSQL would refuse is a 400, never a failed write. */
const storable = (error?: string) =>
  z.string(error ? { error } : undefined).refine(isStorableText, { message: UNSTORABLE_TEXT_MESSAGE });
const nullableString = storable().nullish();

export const revenuecatEventSchema = z.looseObject({
  id: storable("event.id is required").min(1, "event.id is required").max(255),
  type: storable("event.type is required").min(1, "event.type is required").max(100),
  app_user_id: nullableString,
  original_app_user_id: nullableString,
  aliases: z.array(storable()).nullish(),
  product_id: nullableString,
  transaction_id: nullableString,
  original_transaction_id: nullableString,
  environment: nullableString,
  store: nullableString,
  cancel_reason: nullableString,
  price: z.number().nullish(),
  currency: nullableString,
  period_type: nullableString,
  purchased_at_ms: z.number().nullish(),
  /** A subscription period's end; null for a one-time purchase. */
  expiration_at_ms: z.number().nullish(),
  event_timestamp_ms: z.number().nullish(),
  /** Apple Family Sharing: the subscription was shared to this user, not bought by them. */
  is_family_share: z.boolean().nullish(),
  renewal_number: z.number().nullish(),
  is_trial_conversion: z.boolean().nullish(),
  new_product_id: nullableString,
});

export const revenuecatDeliverySchema = z.looseObject({
  api_version: z.string().nullish(),
  event: revenuecatEventSchema,
});

export type RevenuecatEvent = z.infer<typeof revenuecatEventSchema>;

const ANONYMOUS_PREFIX = "$RCAnonymousID:";

export function isAnonymous(userId: string): boolean {
  return userId.startsWith(ANONYMOUS_PREFIX);
}

/**
 * Whose tokens an event concerns: the app_user_id, unless it is anonymous, in which case the first
 * non-anonymous id among `aliases` and then `original_app_user_id`; failing that, the anonymous id.
 */
export function resolveUserId(event: RevenuecatEvent): string | null {
  const primary = event.app_user_id ?? null;
  if (primary && !isAnonymous(primary)) return primary;
  const known = [...(event.aliases ?? []), event.original_app_user_id].find(
    (candidate): candidate is string =>
      typeof candidate === "string" && candidate !== "" && !isAnonymous(candidate),
  );
  return known ?? primary ?? event.original_app_user_id ?? null;
}

/** The ledger's reference for a store transaction: store ids are unique only within their store. */
export function storeTransactionRef(event: RevenuecatEvent): string | null {
  return event.transaction_id ? `${event.store ?? "UNKNOWN"}:${event.transaction_id}` : null;
}

/** What a ledger entry records of the event behind it. */
export function purchaseMetadata(event: RevenuecatEvent): Record<string, unknown> {
  return {
    eventId: event.id,
    eventType: event.type,
    productId: event.product_id ?? null,
    store: event.store ?? null,
    transactionId: event.transaction_id ?? null,
    environment: event.environment ?? null,
  };
}
