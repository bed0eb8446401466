import { createHmac } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import { constantTimeEqual, HttpError, readJson, sendJson } from "../../http.js";
import type { Metrics } from "../../metrics.js";
import { describeIssues } from "../ledger/ledger.validation.js";
import type { PurchasesService } from "./purchases.service.js";
import { revenuecatDeliverySchema } from "./revenuecat.event.js";

export interface WebhookAuth {
  readonly secret: string;
  readonly hmacSecret?: string | undefined;
}

/**
 * RevenueCat sends the dashboard's "authorization header value" verbatim; we accept the secret itself
 * or `Bearer <secret>`. Both comparisons always run, so timing says nothing about which form matched.
 */
export function isAuthorizedDelivery(header: string | undefined, secret: string): boolean {
  const value = header ?? "";
  const plain = constantTimeEqual(value, secret);
  const bearer = constantTimeEqual(value, `Bearer ${secret}`);
  return plain || bearer;
}

/** The optional HMAC-SHA256 of the raw body, hex, for setups (such as a signing proxy) that send one. */
export function hasValidSignature(header: string | undefined, rawBody: string, hmacSecret: string): boolean {
  if (!header) return false;
  const given = header
    .replace(/^sha256=/i, "")
    .trim()
    .toLowerCase();
  const expected = createHmac("sha256", hmacSecret).update(rawBody).digest("hex");
  return constantTimeEqual(given, expected);
}

export const SIGNATURE_HEADER = "x-revenuecat-signature";

export async function revenuecatWebhookRoute(
  deps: {
    purchases: PurchasesService;
    auth: WebhookAuth;
    metrics: Metrics;
    logger: Logger;
    /** Counts a wrong secret against the client; throws once its address is blocked. */
    refused: () => Promise<void>;
  },
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  if (!isAuthorizedDelivery(req.headers.authorization, deps.auth.secret)) {
    await deps.refused();
    throw new HttpError(
      401,
      "Authorization header does not match the configured webhook secret",
      "UNAUTHORIZED",
    );
  }
  const { raw, value } = await readJson(req);
  if (deps.auth.hmacSecret) {
    const signature = req.headers[SIGNATURE_HEADER];
    if (
      !hasValidSignature(typeof signature === "string" ? signature : undefined, raw, deps.auth.hmacSecret)
    ) {
      await deps.refused();
      throw new HttpError(401, "Body signature is missing or does not match", "UNAUTHORIZED");
    }
  }
  const parsed = revenuecatDeliverySchema.safeParse(value);
  if (!parsed.success) throw new HttpError(400, describeIssues(parsed.error.issues), "BAD_REQUEST");
  const outcome = await deps.purchases.handleDelivery(raw, parsed.data.event, deps.logger);
  deps.metrics.webhookEvents.inc({ type: parsed.data.event.type, outcome: outcome.outcome });
  // RevenueCat counts only 200 as delivered; anything else is retried.
  sendJson(res, 200, { outcome: outcome.outcome, detail: outcome.detail });
}
