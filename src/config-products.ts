import { z } from "zod";

/**
 * PRODUCT_TOKEN_MAP: what each RevenueCat product id is worth in tokens. A number is the tokens one
 * purchase credits, never expiring (a pack, or a subscription configured before issue 18). An object
 * is a subscription's grant per period (docs/revenuecat.md, "Subscription credits"):
 *
 *   {"pack_500": 500,
 *    "pro_monthly": {"tokens": 1000, "expires": "period_end", "trialTokens": 0, "rollover": {"cap": 500},
 *                    "creditGroup": "pro"}}
 *
 * An object entry matches only its exact product id (a Play `sub:base-plan` included); only number
 * entries also match a Play base plan through the subscription id (`sub`).
 */

const MAX_TOKENS = 2_000_000_000;

const tokens = (name: string, min: 0 | 1) =>
  z
    .number({ error: `${name} must be a number` })
    .int(`${name} must be a whole number`)
    .min(min, `${name} must be ${min === 0 ? "0 or more" : "positive"}`)
    .max(MAX_TOKENS, `${name} must be at most ${MAX_TOKENS}`);

/** A subscription's grant per period. */
export const subscriptionGrantSchema = z
  .strictObject(
    {
      tokens: tokens("tokens", 1),
      /** `period_end`: a period's tokens expire when it ends; `never`: they are kept, as a number entry's. */
      expires: z
        .enum(["period_end", "never"], 'expires must be "period_end" or "never"')
        .default("period_end"),
      /** A trial period's grant, expiring at the trial's end; 0 (the default) grants nothing. */
      trialTokens: tokens("trialTokens", 0).default(0),
      /** An introductory (INTRO) period's grant; by default the full `tokens`. */
      introTokens: tokens("introTokens", 0).optional(),
      /** At a period's end, up to `cap` unused tokens carry into a rollover lot (the ledger keeps the cap). */
      rollover: z.strictObject({ cap: tokens("rollover.cap", 1) }).optional(),
      /** Products that replace each other on an upgrade (Play starts a new purchase on a product change). */
      creditGroup: z.string().min(1, "creditGroup must not be empty").max(200).optional(),
    },
    {
      error: (issue) =>
        issue.code === "unrecognized_keys"
          ? `unknown ${issue.keys.map((key) => JSON.stringify(key)).join(", ")}: a subscription entry has tokens, expires, trialTokens, introTokens, rollover, creditGroup`
          : undefined,
    },
  )
  .refine((grant) => !(grant.rollover && grant.expires === "never"), {
    message: 'rollover needs "expires": "period_end" (tokens that never expire have nothing to roll over)',
    path: ["rollover"],
  });

export type SubscriptionGrant = z.infer<typeof subscriptionGrantSchema>;

/** One PRODUCT_TOKEN_MAP entry: non-expiring tokens per purchase, or a subscription's grant per period. */
export type ProductEntry = number | SubscriptionGrant;
export type ProductTokenMap = Readonly<Record<string, ProductEntry>>;

const tokensPerPurchase = tokens("token amounts", 1);

/** A number or an object, each judged by its own schema, so a problem names the field it is in. */
const entrySchema = z.unknown().transform((value, ctx): ProductEntry => {
  if (typeof value !== "number" && (typeof value !== "object" || value === null || Array.isArray(value))) {
    ctx.addIssue({
      code: "custom",
      message: 'must be a whole number of tokens or a subscription object such as {"tokens": 1000}',
    });
    return z.NEVER;
  }
  const parsed =
    typeof value === "number" ? tokensPerPurchase.safeParse(value) : subscriptionGrantSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  for (const issue of parsed.error.issues)
    ctx.addIssue({ code: "custom", message: issue.message, path: issue.path });
  return z.NEVER;
});

export const productMapSchema = z
  .string()
  .transform((text, ctx) => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      ctx.addIssue({ code: "custom", message: 'must be a JSON object such as {"token_pack_small":100}' });
      return z.NEVER;
    }
  })
  .pipe(z.record(z.string().min(1, "product ids must not be empty"), entrySchema));

/** What to do with a subscription's older lot when an upgrade opens a new one in the same chain. */
export const UPGRADE_POLICIES = ["expire", "keep"] as const;
export type UpgradePolicy = (typeof UPGRADE_POLICIES)[number];
