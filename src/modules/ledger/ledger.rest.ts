import type { IncomingMessage } from "node:http";
import type { Authenticated, RequestContext } from "../../context.js";
import type { Executor } from "../../db/client.js";
import { readJson } from "../../http/body.js";
import { HttpError, sendJson } from "../../http/errors.js";
import type { Route } from "../../http/router.js";
import { expiringOf } from "./ledger.lot-queries.js";
import {
  type AdminErrorCode,
  adjustPayload,
  type SpendDeps,
  type SpendErrorCode,
  spendPayload,
  transferPayload,
} from "./ledger.payloads.js";
import { listEntries } from "./ledger.queries.js";

/** The seed's REST routes: thin adapters over the same payloads GraphQL gives. */

const SPEND_STATUS: Record<SpendErrorCode, number> = {
  INSUFFICIENT_TOKENS: 409,
  IDEMPOTENCY_KEY_REUSED: 409,
  RATE_LIMITED: 429,
};

/** Every refusal of an operator's write is a conflict with the balance as it stands. */
const ADMIN_STATUS: Record<AdminErrorCode, number> = {
  INSUFFICIENT_TOKENS: 409,
  BALANCE_LIMIT_EXCEEDED: 409,
  IDEMPOTENCY_KEY_REUSED: 409,
};

const HISTORY_MAX = 200;

type RouteDeps = Omit<SpendDeps, "logger"> & { readonly db: Executor };

const userOf = (context: RequestContext) => (context as Authenticated<RequestContext>).viewer.userId;

/** `deps` are the few things the routes use; the request's logger comes with each request. */
export function ledgerRoutes(deps: RouteDeps): Route[] {
  return [balanceRoute(deps), spendRoute(deps), historyRoute(deps), adjustRoute(deps), transferRoute(deps)];
}

function balanceRoute(deps: RouteDeps): Route {
  return {
    method: "GET",
    path: "/api/v1/tokens/balance",
    auth: "user",
    async handle(_req, res, { context }) {
      const userId = userOf(context);
      const [balance, expiring] = await Promise.all([
        deps.ledger.balanceOf(userId),
        expiringOf(deps.db, userId),
      ]);
      const shown = expiring.map((tokens) => ({
        amount: tokens.amount,
        expires_at: tokens.expiresAt.toISOString(),
        sources: tokens.sources,
      }));
      sendJson(res, 200, {
        balance: balance.balance,
        held: balance.held,
        available: balance.balance - balance.held,
        next_expiry: shown[0] ?? null,
        expiring: shown,
        last_updated: balance.lastUpdated?.toISOString() ?? null,
      });
    },
  };
}

function spendRoute(deps: RouteDeps): Route {
  return {
    method: "POST",
    path: "/api/v1/tokens/spend",
    auth: "user",
    async handle(req, res, { context }) {
      const { value } = await readJson(req);
      const input = { ...(isObject(value) ? value : {}), idempotencyKey: keyOf(req) };
      const payload = await spendPayload({ ...deps, logger: context.logger }, userOf(context), input);
      const retry = payload.retryAfterSeconds;
      const body = {
        success: payload.success,
        new_balance: payload.newBalance,
        message: payload.message,
        ...(payload.errorCode ? { error_code: payload.errorCode } : {}),
        ...(payload.entry ? { transaction_id: String(payload.entry.id) } : {}),
        ...(retry ? { retry_after_seconds: retry } : {}),
      };
      const status = payload.errorCode ? SPEND_STATUS[payload.errorCode] : 200;
      sendJson(res, status, body, retry ? { "retry-after": String(retry) } : {});
    },
  };
}

function historyRoute(deps: RouteDeps): Route {
  return {
    method: "GET",
    path: "/api/v1/tokens/history",
    auth: "user",
    async handle(_req, res, { url, context }) {
      const text = url.searchParams.get("limit") ?? "50";
      const limit = Number(text);
      if (!/^\d+$/.test(text) || limit < 1 || limit > HISTORY_MAX) {
        throw new HttpError(400, `limit must be a whole number from 1 to ${HISTORY_MAX}`, "BAD_USER_INPUT");
      }
      const entries = await listEntries(deps.db, userOf(context), { limit });
      sendJson(
        res,
        200,
        entries.map((entry) => ({
          id: String(entry.id),
          amount: entry.amount,
          balance_after: entry.balanceAfter,
          kind: entry.kind,
          description: entry.description,
          metadata: entry.metadata,
          created_at: entry.createdAt.toISOString(),
        })),
      );
    },
  };
}

/** POST {user_id, amount (signed), reason} with an optional Idempotency-Key header; admins only. */
function adjustRoute(deps: RouteDeps): Route {
  return {
    method: "POST",
    path: "/api/v1/tokens/admin/adjust",
    auth: "admin",
    async handle(req, res, { context }) {
      const body = await readBody(req);
      const input = {
        userId: body.user_id,
        amount: body.amount,
        reason: body.reason,
        idempotencyKey: keyOf(req),
      };
      const payload = await adjustPayload({ ...deps, logger: context.logger }, input, userOf(context));
      sendJson(res, payload.errorCode ? ADMIN_STATUS[payload.errorCode] : 200, {
        success: payload.success,
        new_balance: payload.newBalance,
        message: payload.message,
        ...(payload.errorCode ? { error_code: payload.errorCode } : {}),
        ...(payload.entry ? { transaction_id: String(payload.entry.id) } : {}),
      });
    },
  };
}

/** POST {from_user_id, to_user_id, amount, reason} with an optional Idempotency-Key header; admins only. */
function transferRoute(deps: RouteDeps): Route {
  return {
    method: "POST",
    path: "/api/v1/tokens/admin/transfer",
    auth: "admin",
    async handle(req, res, { context }) {
      const body = await readBody(req);
      const input = {
        fromUserId: body.from_user_id,
        toUserId: body.to_user_id,
        amount: body.amount,
        reason: body.reason,
        idempotencyKey: keyOf(req),
      };
      const payload = await transferPayload({ ...deps, logger: context.logger }, input, userOf(context));
      const { debit, credit, errorCode } = payload;
      sendJson(res, errorCode ? ADMIN_STATUS[errorCode] : 200, {
        success: payload.success,
        message: payload.message,
        ...(errorCode ? { error_code: errorCode } : {}),
        ...(debit && credit
          ? {
              from: {
                user_id: debit.userId,
                new_balance: debit.balanceAfter,
                transaction_id: String(debit.id),
              },
              to: {
                user_id: credit.userId,
                new_balance: credit.balanceAfter,
                transaction_id: String(credit.id),
              },
            }
          : {}),
      });
    },
  };
}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const { value } = await readJson(req);
  if (!isObject(value)) throw new HttpError(400, "The body must be a JSON object", "BAD_USER_INPUT");
  return value;
}

function keyOf(req: IncomingMessage): string | undefined {
  const key = req.headers["idempotency-key"];
  return typeof key === "string" ? key : undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
