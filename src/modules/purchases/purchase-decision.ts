import type { ProductTokenMap, UpgradePolicy } from "../../config-products.js";

/**
 * The lot a credit opens (issue 18), for a subscription product: a period's or a trial's tokens,
 * usable from `startsAt` until `expiresAt` (ISO times; null: never).
 */
export interface LotTerms {
  readonly source: "period" | "trial";
  /** The subscription chain: `group:<creditGroup>`, else `<STORE>:<original_transaction_id>`. */
  readonly chain: string;
  readonly product: string;
  readonly startsAt: string;
  readonly expiresAt: string | null;
  readonly rollover: { readonly cap: number } | null;
  /**
   * An upgrade may supersede the chain's older lots: revenuecat_record does so when the chain's last
   * credited purchase was of another product (SUBSCRIPTION_ON_UPGRADE=expire).
   */
  readonly supersede: boolean;
}

/** What one RevenueCat event means for the ledger; the purchases service carries it out. */
export type Decision =
  | { readonly action: "ignore"; readonly reason: string }
  | { readonly action: "fail"; readonly reason: string }
  | { readonly action: "unmapped"; readonly reason: string; readonly userId: string }
  | {
      readonly action: "credit";
      readonly userId: string;
      readonly tokens: number;
      readonly storeRef: string;
      /** Absent: the tokens never expire (a pack, or a product mapped to a number). */
      readonly lot?: LotTerms;
    }
  | { readonly action: "refund"; readonly storeRef: string | null }
  | { readonly action: "reverse"; readonly storeRef: string | null }
  /** SUBSCRIPTION_EXTENDED: the period's lot ends later. */
  | { readonly action: "extend"; readonly storeRef: string; readonly expiresAt: string }
  /** EXPIRATION: the period's lot ends no later than the subscription did. */
  | { readonly action: "cut"; readonly storeRef: string; readonly expiresAt: string };

export interface PurchasePolicyConfig {
  /** Product id → tokens per purchase, or a subscription's grant per period. */
  readonly productTokenMap: ProductTokenMap;
  /** Purchase environments that credit (PRODUCTION, SANDBOX). */
  readonly environments: readonly string[];
  /** A subscription shared through Apple Family Sharing credits the member (default false). */
  readonly grantFamilyShare?: boolean;
  /** A RevenueCat promotional grant credits (default false). */
  readonly grantPromotional?: boolean;
  /** An immediate upgrade expires the older lots' unused tokens (default) or keeps them. */
  readonly onUpgrade?: UpgradePolicy;
}

export function ignore(reason: string): Decision {
  return { action: "ignore", reason };
}
