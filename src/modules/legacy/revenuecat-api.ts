import pThrottle from "p-throttle";

/**
 * The few RevenueCat API v2 calls the import needs, read-only apart from deleting the legacy
 * attribute. Never `GET /v1/subscribers/{id}`: that one creates the customer it cannot find.
 *
 * Requests are spaced evenly to stay under `ratePerMinute` (the customer endpoints share 480 a minute
 * per project). A 429 or 423 pauses every request for the `backoff_ms` the body names (else the
 * `Retry-After` seconds); those and transient failures (5xx, network) are retried with backoff.
 */
export interface RevenuecatApi {
  /** The customer's attributes, or null when RevenueCat has no such customer (404). */
  attributes(customerId: string): Promise<ApiAttribute[] | null>;
  /** The customer's alias ids, or null when RevenueCat has no such customer (404). */
  aliases(customerId: string): Promise<string[] | null>;
  /** Deletes one attribute (POST with a null value). */
  deleteAttribute(customerId: string, name: string): Promise<void>;
  /**
   * Every item of a paged list under the project (a path such as `/products?limit=100`), following
   * `next_page` as given; null when RevenueCat answers 404. Paced and retried like every call here.
   */
  list<T>(projectPath: string): Promise<T[] | null>;
}

export interface ApiAttribute {
  readonly name: string;
  readonly value: unknown;
  /** Milliseconds since the epoch. */
  readonly updatedAt: number | null;
}

export interface RevenuecatApiOptions {
  /** Scheme and host, such as https://api.revenuecat.com. */
  readonly baseUrl: string;
  readonly projectId: string;
  readonly apiKey: string;
  readonly ratePerMinute: number;
  readonly fetch?: typeof fetch;
  /** Attempts per request, the first included. */
  readonly attempts?: number;
}

/** RevenueCat answered with an error that retrying will not fix, or kept failing. */
export class RevenuecatApiError extends Error {
  override readonly name = "RevenuecatApiError";
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface ListPage<T> {
  items: T[];
  next_page?: string | null;
}

const RETRYABLE_STATUSES = new Set([423, 429, 500, 502, 503, 504]);

export function createRevenuecatApi(options: RevenuecatApiOptions): RevenuecatApi {
  const doFetch = options.fetch ?? fetch;
  const attempts = options.attempts ?? 6;
  // One request at a time per interval: even spacing, never a burst at the start of a minute.
  const paced = pThrottle({ limit: 1, interval: Math.ceil(60_000 / options.ratePerMinute) })(() => undefined);
  let pausedUntil = 0;
  const project = `${options.baseUrl}/v2/projects/${encodeURIComponent(options.projectId)}`;
  const customer = (id: string) => `${project}/customers/${encodeURIComponent(id)}`;

  async function send(url: string, init: RequestInit = {}): Promise<Response> {
    for (let attempt = 1; ; attempt += 1) {
      // A 429 answered to any request pauses them all, also those already waiting for their slot.
      do {
        await sleep(pausedUntil - Date.now());
        await paced();
      } while (Date.now() < pausedUntil);
      const response = await doFetch(url, {
        ...init,
        headers: {
          authorization: `Bearer ${options.apiKey}`,
          "content-type": "application/json",
          ...init.headers,
        },
      }).catch((error: unknown) => error as Error);
      const retryable = response instanceof Error || RETRYABLE_STATUSES.has(response.status);
      if (!retryable || attempt >= attempts) {
        if (response instanceof Error) throw new RevenuecatApiError(0, `network error: ${response.message}`);
        return response;
      }
      const wait = response instanceof Error ? undefined : await serverBackoff(response);
      if (wait !== undefined) pausedUntil = Math.max(pausedUntil, Date.now() + wait);
      else await sleep(Math.min(30_000, 500 * 2 ** (attempt - 1)) * (0.5 + Math.random()));
    }
  }

  async function list<T>(path: string): Promise<T[] | null> {
    const items: T[] = [];
    let next: string | null | undefined = path;
    while (next) {
      const response = await send(next.startsWith("http") ? next : `${options.baseUrl}${next}`);
      if (response.status === 404) return null;
      if (!response.ok) throw await apiError(response);
      const page = (await response.json()) as ListPage<T>;
      items.push(...page.items);
      next = page.next_page;
    }
    return items;
  }

  return {
    list: (projectPath) => list(`${project}${projectPath}`),
    async attributes(customerId) {
      type Item = { name: string; value: unknown; updated_at?: number | null };
      const items = await list<Item>(`${customer(customerId)}/attributes?limit=100`);
      return (
        items?.map((item) => ({ name: item.name, value: item.value, updatedAt: item.updated_at ?? null })) ??
        null
      );
    },
    async aliases(customerId) {
      const items = await list<{ id: string }>(`${customer(customerId)}/aliases?limit=100`);
      return items?.map((item) => item.id) ?? null;
    },
    async deleteAttribute(customerId, name) {
      const response = await send(`${customer(customerId)}/attributes`, {
        method: "POST",
        body: JSON.stringify({ attributes: [{ name, value: null }] }),
      });
      if (!response.ok) throw await apiError(response);
      await response.arrayBuffer();
    },
  };
}

/** How long RevenueCat asked us to wait: `backoff_ms` in the body, else `Retry-After` in seconds. */
async function serverBackoff(response: Response): Promise<number | undefined> {
  const body = (await response.json().catch(() => ({}))) as { backoff_ms?: unknown };
  if (typeof body.backoff_ms === "number" && body.backoff_ms >= 0) return body.backoff_ms;
  const header = Number(response.headers.get("retry-after"));
  return Number.isFinite(header) && header >= 0 ? header * 1000 : undefined;
}

async function apiError(response: Response): Promise<RevenuecatApiError> {
  const body = (await response.json().catch(() => ({}))) as { type?: string; message?: string };
  const what = [body.type, body.message].filter(Boolean).join(": ") || response.statusText;
  return new RevenuecatApiError(response.status, `RevenueCat answered ${response.status}: ${what}`);
}

function sleep(ms: number): Promise<void> {
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}
