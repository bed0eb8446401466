import type { ProductEntry, ProductTokenMap, SubscriptionGrant } from "../../config-products.js";

/** What PRODUCT_TOKEN_MAP says about one product id. */
export type ProductMatch =
  | { readonly kind: "pack"; readonly tokens: number }
  | { readonly kind: "subscription"; readonly grant: SubscriptionGrant };

/**
 * The map's entry for a product. Play ids look like `<subscription>:<base plan>`: a number entry for
 * the subscription id also matches its base plans, but a subscription object matches only its exact
 * id, so an annual base plan never gets the monthly plan's grant (it is unmapped instead).
 */
export function productEntry(
  map: ProductTokenMap,
  productId: string | null | undefined,
): ProductMatch | null {
  if (!productId) return null;
  const exact = map[productId];
  if (exact !== undefined) return matchOf(exact);
  const base = productId.split(":")[0];
  if (base === undefined || base === productId) return null;
  const fallback = map[base];
  return typeof fallback === "number" ? { kind: "pack", tokens: fallback } : null;
}

function matchOf(entry: ProductEntry): ProductMatch {
  return typeof entry === "number" ? { kind: "pack", tokens: entry } : { kind: "subscription", grant: entry };
}

/**
 * The tokens one purchase of a product credits: a number entry's tokens, or a subscription's grant
 * for a full period. Null when the product is not mapped.
 */
export function tokensForProduct(map: ProductTokenMap, productId: string | null | undefined): number | null {
  const match = productEntry(map, productId);
  if (!match) return null;
  return match.kind === "pack" ? match.tokens : match.grant.tokens;
}
