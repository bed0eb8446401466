import { createHmac } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { constantTimeEqual, equalsAnySecret } from "../../auth/constant-time.js";
import { type AuthGuard, TooManyAuthFailuresError } from "../../auth/guard.js";
import { isDatabaseUnavailable } from "../../db/errors.js";
import { readJson } from "../../http/body.js";
import { HttpError, sendJson } from "../../http/errors.js";
import type { Route } from "../../http/router.js";
import type { Metrics, WebhookRejection } from "../../metrics.js";
import { describeIssues } from "../../validation.js";
import type { PurchasesService } from "./purchases.service.js";
import { revenuecatDeliverySchema } from "./revenuecat.event.js";

export const WEBHOOK_PATH = "/api/v1/tokens/webhook/revenuecat";
export const SIGNATURE_HEADER = "x-revenuecat-signature";

export interface WebhookAuth {
  readonly secret: string;
  /** REVENUECAT_WEBHOOK_SECRET_PREVIOUS: still accepted while the dashboard is switched over. */
  readonly previousSecret?: string | undefined;
  readonly hmacSecret?: string | undefined;
}

/** `Bearer` followed by the credential; the scheme is case-insensitive (RFC 9110, section 11.1). */
const BEARER_SCHEME = /^bearer\s+/i;

/**
 * RevenueCat sends the dashboard's "authorization header value" verbatim; we accept the secret itself
 * or `Bearer <secret>` (any case of `Bearer`), with the current or the previous secret. Every
 * comparison always runs, so timing says nothing about which form or which secret matched.
 */
export function isAuthorizedDelivery(header: string | undefined, auth: WebhookAuth): boolean {
  const value = header ?? "";
  const secrets = [auth.secret, auth.previousSecret];
  const plain = equalsAnySecret(value, secrets);
  const bearer = equalsAnySecret(value.replace(BEARER_SCHEME, ""), secrets);
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

/** Why a delivery was refused, for `token_webhook_rejected_total` and the access log. */
class WebhookRefusal extends HttpError {
  constructor(
    readonly reason: WebhookRejection,
    message: string,
  ) {
    super(401, message, "UNAUTHORIZED");
  }
}

/** The reason label of a delivery answered other than 200. */
function rejectionOf(error: unknown): WebhookRejection {
  if (error instanceof WebhookRefusal) return error.reason;
  if (error instanceof TooManyAuthFailuresError) return "locked_out";
  if (error instanceof HttpError && error.status === 413) return "too_large";
  if (error instanceof HttpError && error.status < 500) return "bad_body";
  return isDatabaseUnavailable(error) ? "unavailable" : "error";
}

/** POST /api/v1/tokens/webhook/revenuecat: authenticate, bound and parse the body, hand it on. */
export function revenuecatRoute(deps: {
  purchases: PurchasesService;
  auth: WebhookAuth;
  metrics: Metrics;
  guard: AuthGuard;
}): Route {
  const refuse = async (address: string, reason: WebhookRejection, message: string): Promise<never> => {
    await deps.guard.webhookRefused(address);
    throw new WebhookRefusal(reason, message);
  };

  async function deliver(req: IncomingMessage, address: string) {
    if (!isAuthorizedDelivery(req.headers.authorization, deps.auth)) {
      await refuse(
        address,
        "unauthorized",
        "Authorization header does not match the configured webhook secret",
      );
    }
    const { raw, value } = await readJson(req);
    const signature = req.headers[SIGNATURE_HEADER];
    const signed = typeof signature === "string" ? signature : undefined;
    if (deps.auth.hmacSecret && !hasValidSignature(signed, raw, deps.auth.hmacSecret)) {
      await refuse(address, "bad_signature", "Body signature is missing or does not match");
    }
    const parsed = revenuecatDeliverySchema.safeParse(value);
    if (!parsed.success) throw new HttpError(400, describeIssues(parsed.error.issues), "BAD_REQUEST");
    return { raw, event: parsed.data.event };
  }

  return {
    method: "POST",
    path: WEBHOOK_PATH,
    auth: "none",
    async handle(req, res, { address, context, access }) {
      const stopTimer = deps.metrics.webhookDuration.startTimer();
      try {
        const { raw, event } = await deliver(req, address);
        const outcome = await deps.purchases.handleDelivery(raw, event, context.logger);
        deps.metrics.webhookEvents.inc({ type: event.type, outcome: outcome.outcome });
        deps.metrics.webhookOutcomes.inc({ outcome: outcome.outcome });
        // RevenueCat counts only 200 as delivered; anything else is retried.
        sendJson(res, 200, { outcome: outcome.outcome, detail: outcome.detail });
      } catch (error) {
        const reason = rejectionOf(error);
        deps.metrics.webhookRejections.inc({ reason });
        access.webhookRejected = reason;
        throw error;
      } finally {
        stopTimer();
      }
    },
  };
}
