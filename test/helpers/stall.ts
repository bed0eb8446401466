import { signDevToken } from "../../src/auth/jwt.js";
import { JWT_SECRET } from "./app.js";
import type { OutageProxy } from "./tcp-proxy.js";

/** One request a client made: when it started and ended (ms since the run began), and its answer. */
export interface Attempt {
  readonly key: string;
  readonly startedAt: number;
  readonly endedAt: number;
  /** 0: no answer before the client gave up (a hang), or the connection failed. */
  readonly status: number;
  readonly body: string;
  readonly retryAfter: string | null;
}

export interface StallFigures {
  readonly pauseMs: number;
  /** Requests started while the database was frozen. */
  readonly startedDuringPause: number;
  readonly answeredWithinDeadline: number;
  /** Requests the client gave up on (`giveUpMs`) without an answer. */
  readonly hung: number;
  readonly slowestMs: number;
  /** How long each /ready took while frozen, and what it answered. */
  readonly ready: readonly { ms: number; status: number }[];
  readonly healthSlowestMs: number;
  /** From the thaw to the first 200 of a balance read started after it. */
  readonly resumptionMs: number;
  /** Idempotency keys acknowledged (200, success) by the end. */
  readonly acknowledged: readonly string[];
  readonly attempts: readonly Attempt[];
}

/**
 * Freezes the proxy between a server and PostgreSQL for `pauseMs` while `clients` clients each spend
 * 1 token at a time through REST, retrying a key (after Retry-After, at most 1 s) until it is answered
 * 200 as the SDK does, then thaws it. Measures what the issue asks: how many requests started during
 * the pause were answered within the deadline, how many hung, /ready's and /health's times meanwhile,
 * and how soon after the thaw a read is answered again.
 */
export async function measureStall(options: {
  url: string;
  proxy: OutageProxy;
  userId: string;
  deadlineMs: number;
  pauseMs?: number;
  clients?: number;
  giveUpMs?: number;
}): Promise<StallFigures> {
  const { url, proxy, deadlineMs } = options;
  const pauseMs = options.pauseMs ?? 8_000;
  const giveUpMs = options.giveUpMs ?? 20_000;
  const token = await signDevToken({ secret: JWT_SECRET, userId: options.userId, expiresIn: "1h" });
  const began = Date.now();
  const now = () => Date.now() - began;
  const attempts: Attempt[] = [];
  const acknowledged: string[] = [];
  let stop = false;

  const spend = async (key: string): Promise<Attempt> => {
    const startedAt = now();
    try {
      const response = await fetch(`${url}/api/v1/tokens/spend`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/json",
          "idempotency-key": key,
        },
        body: JSON.stringify({ amount: 1, description: key }),
        signal: AbortSignal.timeout(giveUpMs),
      });
      const body = await response.text();
      return {
        key,
        startedAt,
        endedAt: now(),
        status: response.status,
        body,
        retryAfter: response.headers.get("retry-after"),
      };
    } catch {
      return { key, startedAt, endedAt: now(), status: 0, body: "", retryAfter: null };
    }
  };
  const client = async (id: number) => {
    for (let n = 0; !stop; n += 1) {
      const key = `c${id}-${n}`;
      for (;;) {
        const attempt = await spend(key);
        attempts.push(attempt);
        if (attempt.status === 200) {
          if ((JSON.parse(attempt.body) as { success?: boolean }).success) acknowledged.push(key);
          break;
        }
        const wait = Math.min(1_000, Number(attempt.retryAfter ?? 0.2) * 1_000);
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  };
  const clients = Array.from({ length: options.clients ?? 16 }, (_, id) => client(id));

  await new Promise((resolve) => setTimeout(resolve, 1_000));
  proxy.freeze();
  const frozenAt = now();
  const ready: { ms: number; status: number }[] = [];
  let healthSlowestMs = 0;
  while (now() - frozenAt < pauseMs) {
    const [readyTimed, healthTimed] = await Promise.all([timed(`${url}/ready`), timed(`${url}/health`)]);
    ready.push(readyTimed);
    healthSlowestMs = Math.max(healthSlowestMs, healthTimed.ms);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  proxy.thaw();
  const thawedAt = Date.now();
  let resumptionMs = Number.POSITIVE_INFINITY;
  while (Date.now() - thawedAt < 15_000) {
    const started = Date.now();
    const answer = await timed(`${url}/api/v1/tokens/balance`, token);
    if (answer.status === 200) {
      resumptionMs = started - thawedAt + answer.ms;
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  stop = true;
  await Promise.all(clients);

  const during = attempts.filter((a) => a.startedAt >= frozenAt && a.startedAt < frozenAt + pauseMs);
  return {
    pauseMs,
    startedDuringPause: during.length,
    answeredWithinDeadline: during.filter(
      (a) => a.status !== 0 && a.endedAt - a.startedAt <= deadlineMs + 1_000,
    ).length,
    hung: during.filter((a) => a.status === 0).length,
    slowestMs: Math.max(0, ...during.map((a) => a.endedAt - a.startedAt)),
    ready,
    healthSlowestMs,
    resumptionMs,
    acknowledged,
    attempts,
  };
}

async function timed(url: string, token?: string): Promise<{ ms: number; status: number }> {
  const started = Date.now();
  const status = await fetch(url, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
    signal: AbortSignal.timeout(20_000),
  }).then(
    async (response) => {
      await response.arrayBuffer();
      return response.status;
    },
    () => 0,
  );
  return { ms: Date.now() - started, status };
}
