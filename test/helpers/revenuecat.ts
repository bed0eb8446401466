import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { WEBHOOK_SECRET } from "./app.js";

const folder = new URL("../fixtures/revenuecat/", import.meta.url);

/** The real delivery bodies from RevenueCat's documentation, by file name without `.json`. */
export const FIXTURE_NAMES = readdirSync(folder)
  .filter((name) => name.endsWith(".json"))
  .map((name) => name.replace(/\.json$/, ""));

export interface Delivery {
  api_version?: string;
  event: Record<string, unknown> & { id: string; type: string };
}

/**
 * A fixture body with fresh ids, so that tests sharing a database never collide: a new event id,
 * a new store transaction id, and (when given) the app user id swapped in wherever the fixture
 * names its own user. Everything else stays exactly as RevenueCat documents it.
 */
export function fixture(name: string, overrides: Record<string, unknown> = {}): Delivery {
  const body = JSON.parse(readFileSync(new URL(`${name}.json`, folder), "utf8")) as Delivery;
  body.event.id = randomUUID().toUpperCase();
  if (typeof body.event.transaction_id === "string") {
    const transactionId = `${Date.now()}${Math.floor(Math.random() * 1e9)}`;
    body.event.transaction_id = transactionId;
    body.event.original_transaction_id = transactionId;
  }
  Object.assign(body.event, overrides);
  return body;
}

export async function deliver(
  baseUrl: string,
  body: unknown,
  options: { authorization?: string | null; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: { outcome?: string; detail?: string; error?: { message: string } } }> {
  const authorization =
    options.authorization === undefined ? `Bearer ${WEBHOOK_SECRET}` : options.authorization;
  const response = await fetch(`${baseUrl}/api/v1/tokens/webhook/revenuecat`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(authorization === null ? {} : { authorization }),
      ...options.headers,
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as never };
}
