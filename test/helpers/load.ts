import { randomUUID } from "node:crypto";

/**
 * A client that keeps spending (each spend with an Idempotency-Key) and reading balances through a
 * load balancer, retrying what may be retried safely: a refused or reset connection, a 502/503/504,
 * or no answer within the timeout. A spend is retried with its own key, so an attempt that did commit
 * is replayed, not spent twice. What still failed after its retries is a failed request.
 */
export interface LoadUser {
  readonly userId: string;
  readonly token: string;
}

export interface LoadReport {
  /** Requests the client made (a retried request counts once). */
  requests: number;
  spends: number;
  reads: number;
  /** Extra attempts after a retryable failure. */
  retries: number;
  /** What the retries answered: status codes, or the network error's code. */
  retriedBecause: Record<string, number>;
  /** Requests that got no successful answer even after retrying: must be 0. */
  failed: number;
  failures: string[];
  /** The longest time between two successful answers, anywhere in the run. */
  longestGapMs: number;
  /** The longest a single request took, first attempt to answer. */
  longestRequestMs: number;
  /** Successful answers per instance (HAProxy's X-Served-By). */
  servedBy: Record<string, number>;
  /** Per user: the idempotency keys of the spends that succeeded, with their transaction ids. */
  spent: Map<string, Map<string, string>>;
}

const RETRYABLE_STATUS = new Set([502, 503, 504]);

export function startLoad(options: {
  url: string;
  users: readonly LoadUser[];
  workers: number;
  /** Requests per second over all workers (each worker paces itself to its share). */
  perSecond: number;
  /** Give up on one request after this long (then it is a failed request). */
  giveUpMs?: number;
}): { stop(): Promise<LoadReport> } {
  const report: LoadReport = {
    requests: 0,
    spends: 0,
    reads: 0,
    retries: 0,
    retriedBecause: {},
    failed: 0,
    failures: [],
    longestGapMs: 0,
    longestRequestMs: 0,
    servedBy: {},
    spent: new Map(options.users.map((user) => [user.userId, new Map()])),
  };
  let running = true;
  let lastSuccess = Date.now();
  let counter = 0;
  const giveUpMs = options.giveUpMs ?? 20_000;

  const succeeded = (response: Response) => {
    const now = Date.now();
    report.longestGapMs = Math.max(report.longestGapMs, now - lastSuccess);
    lastSuccess = now;
    const server = response.headers.get("x-served-by") ?? "unknown";
    report.servedBy[server] = (report.servedBy[server] ?? 0) + 1;
  };

  /** One request with its retries; resolves with the successful response's body, or undefined. */
  const send = async (what: string, path: string, init: RequestInit): Promise<unknown> => {
    report.requests += 1;
    const started = Date.now();
    for (let attempt = 0; ; attempt += 1) {
      let reason: string;
      try {
        const response = await fetch(`${options.url}${path}`, {
          ...init,
          signal: AbortSignal.timeout(10_000),
        });
        const body = (await response.json().catch(() => null)) as unknown;
        if (response.status === 200) {
          succeeded(response);
          report.longestRequestMs = Math.max(report.longestRequestMs, Date.now() - started);
          return body;
        }
        if (!RETRYABLE_STATUS.has(response.status)) {
          report.failed += 1;
          report.failures.push(`${what}: ${response.status} ${JSON.stringify(body)}`);
          return undefined;
        }
        reason = String(response.status);
      } catch (error) {
        const cause = (error as { cause?: { code?: string } }).cause;
        reason = cause?.code ?? (error as Error).name;
      }
      if (Date.now() - started > giveUpMs) {
        report.failed += 1;
        report.failures.push(`${what}: gave up after ${attempt + 1} attempts (last: ${reason})`);
        return undefined;
      }
      report.retries += 1;
      report.retriedBecause[reason] = (report.retriedBecause[reason] ?? 0) + 1;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  const interval = (1000 * options.workers) / options.perSecond;
  const worker = async () => {
    while (running) {
      const due = Date.now() + interval;
      await request();
      const wait = due - Date.now();
      if (wait > 0 && running) await new Promise((resolve) => setTimeout(resolve, wait));
    }
  };
  const request = async () => {
    counter += 1;
    const user = options.users[counter % options.users.length] as LoadUser;
    const headers = { authorization: `Bearer ${user.token}`, "content-type": "application/json" };
    if (counter % 4 === 0) {
      report.reads += 1;
      await send("read", "/api/v1/tokens/balance", { headers });
      return;
    }
    report.spends += 1;
    const key = randomUUID();
    const body = (await send(`spend ${key}`, "/api/v1/tokens/spend", {
      method: "POST",
      headers: { ...headers, "idempotency-key": key },
      body: JSON.stringify({ amount: 1, description: "rolling restart" }),
    })) as { success?: boolean; transaction_id?: string } | undefined;
    if (body?.success && body.transaction_id) report.spent.get(user.userId)?.set(key, body.transaction_id);
  };
  const workers = Array.from({ length: options.workers }, () => worker());
  return {
    async stop() {
      running = false;
      await Promise.all(workers);
      return report;
    },
  };
}
