import type { LegacyAttribute } from "./legacy-value.js";

/** One customer of the legacy store, as a source reads it. */
export interface LegacyCustomer {
  /** The customer; each is imported at most once. */
  readonly customerId: string;
  /** Who gets the tokens: the app user id the app also gives RevenueCat (and our JWT `sub`). */
  readonly userId: string;
  /** The legacy attribute, or null when the customer does not have it. */
  readonly attribute: LegacyAttribute | null;
  /** Attribute names that differ from the one asked for only in case, worth a look. */
  readonly nearMatches: readonly string[];
}

/** What a source yields, in order: a customer, or why an id or a line gave none. */
export type SourceItem =
  | { readonly kind: "customer"; readonly customer: LegacyCustomer }
  | { readonly kind: "not-found"; readonly id: string }
  | { readonly kind: "unreadable"; readonly id: string; readonly reason: string }
  | { readonly kind: "alias"; readonly id: string; readonly customerId: string }
  | { readonly kind: "malformed"; readonly line: number; readonly reason: string }
  /** A line that lists a customer again and lost to a newer one (`keptLine`). */
  | { readonly kind: "duplicate"; readonly id: string; readonly line: number; readonly keptLine: number };

/** Ids RevenueCat gives a customer before the app logs in: no signed-in user (JWT `sub`) reaches them. */
export function isAnonymousId(userId: string): boolean {
  return userId.startsWith("$RCAnonymousID:");
}

/** Picks the attribute out of a customer's attributes, noting names that differ only in case. */
export function pickAttribute(
  attributes: ReadonlyMap<string, LegacyAttribute>,
  name: string,
): { attribute: LegacyAttribute | null; nearMatches: string[] } {
  const nearMatches = [...attributes.keys()].filter(
    (key) => key !== name && key.toLowerCase() === name.toLowerCase(),
  );
  return { attribute: attributes.get(name) ?? null, nearMatches };
}
