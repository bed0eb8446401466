import type { IncomingMessage, ServerResponse } from "node:http";
import type { Viewer } from "../../auth/jwt.js";
import type { AppServices } from "../../context.js";
import { HttpError, readJson, sendJson } from "../../http.js";
import { spendOutcome } from "./ledger.outcomes.js";
import { getBalance, listEntries } from "./ledger.queries.js";
import { describeIssues, spendInputSchema } from "./ledger.validation.js";

/** The seed's REST routes: thin adapters over the same ledger service GraphQL uses. */

export async function getBalanceRoute(
  services: AppServices,
  viewer: Viewer,
  res: ServerResponse,
): Promise<void> {
  const balance = await getBalance(services.db, viewer.userId);
  sendJson(res, 200, { balance: balance.balance, last_updated: balance.lastUpdated?.toISOString() ?? null });
}

export async function spendRoute(
  services: AppServices,
  viewer: Viewer,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const { value } = await readJson(req);
  const header = req.headers["idempotency-key"];
  const parsed = spendInputSchema.safeParse({
    ...(typeof value === "object" && value !== null ? value : {}),
    idempotencyKey: typeof header === "string" ? header : undefined,
  });
  if (!parsed.success) {
    services.metrics.spends.inc({ outcome: "invalid" });
    throw new HttpError(400, describeIssues(parsed.error.issues), "BAD_USER_INPUT");
  }
  const outcome = await spendOutcome(services, viewer.userId, parsed.data);
  const status = outcome.success ? 200 : outcome.errorCode === "RATE_LIMITED" ? 429 : 409;
  const headers: Record<string, string> = outcome.retryAfterSeconds
    ? { "retry-after": String(outcome.retryAfterSeconds) }
    : {};
  sendJson(
    res,
    status,
    {
      success: outcome.success,
      new_balance: outcome.newBalance,
      message: outcome.message,
      ...(outcome.errorCode ? { error_code: outcome.errorCode } : {}),
      ...(outcome.entry ? { transaction_id: String(outcome.entry.id) } : {}),
      ...(outcome.retryAfterSeconds ? { retry_after_seconds: outcome.retryAfterSeconds } : {}),
    },
    headers,
  );
}

export async function historyRoute(
  services: AppServices,
  viewer: Viewer,
  url: URL,
  res: ServerResponse,
): Promise<void> {
  const limitText = url.searchParams.get("limit") ?? "50";
  const limit = Number(limitText);
  if (!/^\d+$/.test(limitText) || limit < 1 || limit > 200) {
    throw new HttpError(400, "limit must be a whole number from 1 to 200", "BAD_USER_INPUT");
  }
  const entries = await listEntries(services.db, viewer.userId, { limit });
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
}
