import type { IncomingMessage, ServerResponse } from "node:http";
import type { Authenticated, RequestContext } from "../../context.js";
import { readJson } from "../../http/body.js";
import { HttpError, sendJson } from "../../http/errors.js";
import type { Route } from "../../http/router.js";
import {
  capturePayload,
  type HoldErrorCode,
  type HoldPayload,
  releasePayload,
  reservePayload,
} from "./ledger.holds.payloads.js";
import type { SpendDeps } from "./ledger.payloads.js";
import type { Hold, HoldActor, HoldStatus } from "./ledger.types.js";

/**
 * Holds over REST under /api/v1/tokens/holds: thin adapters over the same payloads GraphQL gives.
 * Bodies and answers are snake_case like the other routes; refusals are `success: false` with an
 * `error_code`: 404 for HOLD_NOT_FOUND, 429 with Retry-After for RATE_LIMITED, 400 for INVALID_TTL,
 * 409 for the rest.
 */

const HOLD_STATUS: Record<HoldErrorCode, number> = {
  INSUFFICIENT_TOKENS: 409,
  TOO_MANY_HOLDS: 409,
  RATE_LIMITED: 429,
  IDEMPOTENCY_KEY_REUSED: 409,
  INVALID_TTL: 400,
  HOLD_NOT_FOUND: 404,
  HOLD_EXPIRED: 409,
  HOLD_RELEASED: 409,
  HOLD_ALREADY_CAPTURED: 409,
  AMOUNT_EXCEEDS_HOLD: 409,
};

const STATUSES: readonly HoldStatus[] = ["active", "captured", "released", "expired"];
const PAGE_MAX = 100;
const BASE = "/api/v1/tokens/holds";

type Deps = Pick<SpendDeps, "ledger" | "limits">;

const viewerOf = (context: RequestContext) => (context as Authenticated<RequestContext>).viewer;
const actorOf = (context: RequestContext): HoldActor => {
  const viewer = viewerOf(context);
  return { userId: viewer.userId, admin: viewer.isAdmin };
};

export function holdRoutes(deps: Deps): Route[] {
  return [
    {
      method: "POST",
      path: BASE,
      auth: "user",
      async handle(req, res, { context }) {
        const body = await readBody(req);
        const input = {
          amount: body.amount,
          ttlSeconds: body.ttl_seconds,
          description: body.description,
          metadata: body.metadata,
          idempotencyKey: keyOf(req),
        };
        const payload = await reservePayload(
          { ...deps, logger: context.logger },
          viewerOf(context).userId,
          input,
        );
        await send(deps, res, payload, payload.replayed ? 200 : 201);
      },
    },
    {
      method: "POST",
      path: `${BASE}/:id/capture`,
      auth: "user",
      async handle(req, res, { context, params }) {
        const body = await readBody(req);
        const input = {
          amount: body.amount,
          overage: body.overage,
          description: body.description,
          metadata: body.metadata,
        };
        const logger = context.logger;
        const payload = await capturePayload({ ...deps, logger }, actorOf(context), params.id ?? "", input);
        await send(deps, res, payload, 200);
      },
    },
    {
      method: "POST",
      path: `${BASE}/:id/release`,
      auth: "user",
      async handle(_req, res, { context, params }) {
        const payload = await releasePayload(
          { ...deps, logger: context.logger },
          actorOf(context),
          params.id ?? "",
        );
        await send(deps, res, payload, 200);
      },
    },
    {
      method: "GET",
      path: `${BASE}/:id`,
      auth: "user",
      async handle(_req, res, { context, params }) {
        const hold = await deps.ledger.holdOf(params.id ?? "", actorOf(context));
        if (!hold) throw new HttpError(404, `No hold ${params.id}`, "HOLD_NOT_FOUND");
        sendJson(res, 200, shown(hold));
      },
    },
    {
      method: "GET",
      path: BASE,
      auth: "user",
      async handle(_req, res, { url, context }) {
        const query = url.searchParams;
        const status = query.get("status")?.toLowerCase();
        if (status !== undefined && !STATUSES.includes(status as HoldStatus)) {
          throw new HttpError(400, `status must be one of ${STATUSES.join(", ")}`, "BAD_USER_INPUT");
        }
        const limitText = query.get("limit") ?? "20";
        const first = Number(limitText);
        if (!/^\d+$/.test(limitText) || first < 1 || first > PAGE_MAX) {
          throw new HttpError(400, `limit must be a whole number from 1 to ${PAGE_MAX}`, "BAD_USER_INPUT");
        }
        const after = query.get("after") ?? undefined;
        if (after !== undefined && !/^[1-9]\d{0,17}$/.test(after)) {
          throw new HttpError(400, "after must be a hold id", "BAD_USER_INPUT");
        }
        const page = await deps.ledger.holdsOf(viewerOf(context).userId, {
          status: status as HoldStatus | undefined,
          first,
          after,
        });
        sendJson(res, 200, {
          holds: page.holds.map(shown),
          has_more: page.hasMore,
          next_after: page.hasMore ? (page.holds.at(-1)?.id ?? null) : null,
        });
      },
    },
  ];
}

/** The payload with the balance as it stands (the hold owner's), and the status its outcome calls for. */
async function send(deps: Deps, res: ServerResponse, payload: HoldPayload, okStatus: number): Promise<void> {
  const balance = await deps.ledger.balanceOf(payload.userId);
  const retry = payload.retryAfterSeconds;
  const body = {
    success: payload.success,
    message: payload.message,
    ...(payload.errorCode ? { error_code: payload.errorCode } : {}),
    replayed: payload.replayed,
    hold: payload.hold ? shown(payload.hold) : null,
    ...(payload.entry ? { transaction_id: String(payload.entry.id) } : {}),
    ...(payload.shortfall ? { shortfall: payload.shortfall } : {}),
    ...(retry ? { retry_after_seconds: retry } : {}),
    new_balance: balance.balance,
    held: balance.held,
    available: balance.balance - balance.held,
  };
  const status = payload.errorCode ? HOLD_STATUS[payload.errorCode] : okStatus;
  sendJson(res, status, body, retry ? { "retry-after": String(retry) } : {});
}

function shown(hold: Hold) {
  return {
    id: hold.id,
    user_id: hold.userId,
    amount: hold.amount,
    status: hold.status.toUpperCase(),
    captured: hold.captured,
    created_at: hold.createdAt.toISOString(),
    expires_at: hold.expiresAt.toISOString(),
    closed_at: hold.closedAt?.toISOString() ?? null,
    description: hold.description,
    metadata: hold.metadata,
  };
}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const { value } = await readJson(req);
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new HttpError(400, "The body must be a JSON object", "BAD_USER_INPUT");
  }
  return value as Record<string, unknown>;
}

function keyOf(req: IncomingMessage): string | undefined {
  const key = req.headers["idempotency-key"];
  return typeof key === "string" ? key : undefined;
}
