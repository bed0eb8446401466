import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A local stand-in for RevenueCat's REST API v2, answering the documented shapes of the calls the
 * legacy import makes: list a customer's attributes and aliases (paged with next_page), and delete an
 * attribute (POST with a null value). Errors use RevenueCat's error body. Tests script failures:
 * 429 with Retry-After and backoff_ms, 423, and a failure from some request on.
 */
export interface FakeCustomer {
  readonly aliases?: readonly string[];
  readonly attributes: Record<string, { value: string | null; updated_at: number }>;
  /** One-time purchases, as `GET …/customers/{id}/purchases` lists them (API v2 `Purchase`). */
  readonly purchases?: FakePurchase[];
  /** Subscriptions, as `GET …/customers/{id}/subscriptions` lists them. */
  readonly subscriptions?: FakeSubscription[];
}

/** API v2's `Purchase`: `product_id` is RevenueCat's own product id, stores and environments lower case. */
export interface FakePurchase {
  readonly object?: "purchase";
  readonly id: string;
  readonly customer_id: string;
  readonly original_customer_id: string;
  readonly product_id: string;
  readonly purchased_at: number;
  readonly revenue_in_usd?: Record<string, unknown>;
  readonly quantity: number;
  status: "owned" | "refunded";
  readonly presented_offering_id: string | null;
  readonly entitlements: { object: "list"; items: unknown[] };
  readonly environment: "production" | "sandbox";
  readonly store: string;
  readonly store_purchase_identifier: string;
  readonly ownership: "purchased" | "family_shared";
  readonly country?: string;
}

export interface FakeSubscription {
  readonly id: string;
  readonly customer_id: string;
  readonly product_id: string;
  readonly store: string;
  readonly environment: "production" | "sandbox";
  readonly store_subscription_identifier: string;
  readonly status: string;
  readonly gives_access: boolean;
  readonly ownership: "purchased" | "family_shared";
  readonly starts_at: number;
  readonly current_period_ends_at: number;
  /** `SubscriptionTransaction`s; null: the store has none to list (404). */
  readonly transactions:
    | {
        id: string;
        purchased_at: number;
        product_store_identifier: string;
        expiration_date: number;
      }[]
    | null;
}

export interface RecordedRequest {
  readonly at: number;
  readonly method: string;
  readonly path: string;
  readonly status: number;
}

export class FakeRevenuecatApi {
  readonly requests: RecordedRequest[] = [];
  readonly apiKey = "sk_test_fake_revenuecat_key";
  readonly projectId = "proj_fake";
  /** Scripted answers, consumed one per request, before the normal answer. */
  readonly script: { status: 429 | 423 | 500; backoffMs?: number; retryAfterSeconds?: number }[] = [];
  /** From this request number on (1-based), every request fails with 503 until reset to undefined. */
  failFrom: number | undefined;
  /** Called before an attribute is deleted; a test checks what it must (the import has committed). */
  onDelete: ((customerId: string, name: string) => void | Promise<void>) | undefined;
  /** Customers whose delete always fails with 500. */
  readonly failingDeletes = new Set<string>();
  /** Customers whose every read fails with 503 (and a short backoff_ms, so retries are quick). */
  readonly failingCustomers = new Set<string>();
  /** The project's products (`GET …/products`): RevenueCat's id → the store's identifier. */
  readonly products: { id: string; store_identifier: string; type: string }[] = [];
  private server: Server | undefined;
  url = "";

  constructor(readonly customers = new Map<string, FakeCustomer>()) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      void this.handle(req, res).catch((error: unknown) =>
        this.send(req, res, 500, { message: String(error) }),
      );
    });
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  /** The id a customer is known by, for any of its ids. */
  private find(id: string): [string, FakeCustomer] | undefined {
    for (const [key, customer] of this.customers) {
      if (key === id || customer.aliases?.includes(id)) return [key, customer];
    }
    return undefined;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.url);
    if (req.headers.authorization !== `Bearer ${this.apiKey}`) {
      return this.error(req, res, 401, "authentication_error", false);
    }
    const scripted = this.script.shift();
    if (scripted) return this.scripted(req, res, scripted);
    if (this.failFrom !== undefined && this.requests.length + 1 >= this.failFrom) {
      return this.error(req, res, 503, "server_error", true);
    }
    const project = `/v2/projects/${this.projectId}`;
    if (url.pathname === `${project}/products`) {
      const items = this.products.map((product) => ({ object: "product", ...product }));
      return this.page(req, res, url, items, (item) => item.id);
    }
    const transactions = /^\/v2\/projects\/[^/]+\/subscriptions\/([^/]+)\/transactions$/.exec(url.pathname);
    if (transactions && url.pathname.startsWith(project)) {
      const id = decodeURIComponent(transactions[1] as string);
      const subscription = [...this.customers.values()]
        .flatMap((customer) => customer.subscriptions ?? [])
        .find((candidate) => candidate.id === id);
      if (!subscription?.transactions) return this.error(req, res, 404, "resource_missing", false);
      const items = subscription.transactions.map((item) => ({
        object: "subscription_transaction",
        ...item,
      }));
      return this.page(req, res, url, items, (item) => item.id);
    }
    const match =
      /^\/v2\/projects\/([^/]+)\/customers\/([^/]+)\/(attributes|aliases|purchases|subscriptions)$/.exec(
        url.pathname,
      );
    if (!match || decodeURIComponent(match[1] as string) !== this.projectId) {
      return this.error(req, res, 404, "resource_missing", false);
    }
    if (this.failingCustomers.has(decodeURIComponent(match[2] as string))) {
      return this.send(req, res, 503, errorBody("server_error", true, 10));
    }
    const found = this.find(decodeURIComponent(match[2] as string));
    if (!found) return this.error(req, res, 404, "resource_missing", false);
    const [key, customer] = found;
    if (match[3] === "purchases") {
      const items = (customer.purchases ?? []).map((item) => ({ object: "purchase", ...item }));
      return this.page(req, res, url, items, (item) => item.id);
    }
    if (match[3] === "subscriptions") {
      const items = (customer.subscriptions ?? []).map(({ transactions: _, ...item }) => ({
        object: "subscription",
        ...item,
      }));
      return this.page(req, res, url, items, (item) => item.id);
    }
    if (match[3] === "aliases") {
      const ids = [key, ...(customer.aliases ?? [])].map((id) => ({
        object: "customer.alias",
        id,
        created_at: 0,
      }));
      return this.page(req, res, url, ids, (item) => item.id);
    }
    if (req.method === "POST") return this.update(req, res, key, customer);
    const items = Object.entries(customer.attributes)
      .filter(([, attribute]) => attribute.value !== null)
      .map(([name, attribute]) => ({ object: "customer.attribute", name, ...attribute }));
    return this.page(req, res, url, items, (item) => item.name);
  }

  /** One page of a list, cut at `limit` (default 20) after `starting_after`, with the next page's path. */
  private page<T>(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    items: T[],
    cursor: (item: T) => string,
  ): void {
    const limit = Number(url.searchParams.get("limit") ?? 20);
    const after = url.searchParams.get("starting_after");
    const start = after === null ? 0 : items.findIndex((item) => cursor(item) === after) + 1;
    const slice = items.slice(start, start + Math.min(limit, 2));
    const more = start + slice.length < items.length;
    const last = slice.at(-1);
    const next =
      more && last !== undefined
        ? `${url.pathname}?limit=${limit}&starting_after=${encodeURIComponent(cursor(last))}`
        : null;
    this.send(req, res, 200, { object: "list", items: slice, next_page: next, url: url.pathname });
  }

  private async update(
    req: IncomingMessage,
    res: ServerResponse,
    key: string,
    customer: FakeCustomer,
  ): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString()) as {
      attributes: { name: string; value: string | null }[];
    };
    if (this.failingDeletes.has(key)) return this.error(req, res, 500, "server_error", true);
    for (const attribute of body.attributes) {
      if (attribute.value === null) await this.onDelete?.(key, attribute.name);
      customer.attributes[attribute.name] = { value: attribute.value, updated_at: Date.now() };
    }
    this.send(req, res, 200, { object: "list", items: [], next_page: null });
  }

  private scripted(req: IncomingMessage, res: ServerResponse, answer: (typeof this.script)[number]): void {
    const headers: Record<string, string> =
      answer.retryAfterSeconds === undefined ? {} : { "retry-after": String(answer.retryAfterSeconds) };
    const type =
      answer.status === 429
        ? "rate_limit_error"
        : answer.status === 423
          ? "resource_locked_error"
          : "server_error";
    this.send(req, res, answer.status, errorBody(type, true, answer.backoffMs), headers);
  }

  private error(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    type: string,
    retryable: boolean,
  ): void {
    this.send(req, res, status, errorBody(type, retryable));
  }

  private send(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
  ): void {
    this.requests.push({ at: Date.now(), method: req.method ?? "GET", path: req.url ?? "", status });
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(body));
  }
}

function errorBody(type: string, retryable: boolean, backoffMs?: number): Record<string, unknown> {
  return {
    object: "error",
    type,
    message: `fake ${type}`,
    retryable,
    doc_url: "https://errors.rev.cat/fake",
    ...(backoffMs === undefined ? {} : { backoff_ms: backoffMs }),
  };
}
