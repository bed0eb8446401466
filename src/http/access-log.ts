import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";

/**
 * What the access line tells about a request beyond method, path, status and duration, filled in by
 * whoever learns it while the request is served. Never a credential or a body: only who, which
 * operation and why a request was refused.
 */
export interface AccessRecord {
  userId?: string;
  /** The GraphQL operation's name ("anonymous" when it has none). */
  operation?: string;
  /** The `extensions.code` of each GraphQL error in the answer. */
  errorCodes?: readonly string[];
  /** Why a presented credential was refused (the message the client got, never the credential). */
  authFailure?: string;
  /** The address was blocked after too many failed authentications. */
  lockedOut?: boolean;
  /** Why a RevenueCat delivery was not accepted. */
  webhookRejected?: string;
}

/** Probes hit every few seconds by load balancers and Prometheus: logged at debug while they succeed. */
const PROBES: ReadonlySet<string> = new Set(["/health", "/ready", "/metrics"]);

/**
 * Writes one line per request when its response is done (or the connection is cut). A refused
 * credential, a lockout and a refused webhook are warnings, with a message saying so; a probe that
 * succeeds is debug; everything else info. The path never carries the query string.
 */
export function logAccessWhenDone(
  logger: Logger,
  req: IncomingMessage,
  res: ServerResponse,
  access: { readonly requestId: string; readonly clientAddress: string; readonly record: AccessRecord },
): void {
  const started = process.hrtime.bigint();
  res.once("close", () => {
    const { record, requestId } = access;
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const fields = {
      method: req.method,
      path,
      status: res.statusCode,
      durationMs: Math.round(Number(process.hrtime.bigint() - started) / 1e4) / 100,
      requestId,
      ...record,
      ...(res.writableFinished ? {} : { aborted: true }),
    };
    const [level, message] = classify(path, res.statusCode, record);
    // Who is being refused matters to an operator (guessing, a misconfigured client, a lockout).
    logger[level](level === "warn" ? { ...fields, clientAddress: access.clientAddress } : fields, message);
  });
}

function classify(path: string, status: number, record: AccessRecord): ["debug" | "info" | "warn", string] {
  if (record.lockedOut) return ["warn", "authentication locked out"];
  if (record.webhookRejected === "unauthorized" || record.webhookRejected === "bad_signature")
    return ["warn", "webhook refused: authorization does not match"];
  if (record.authFailure || status === 401) return ["warn", "authentication failed"];
  if (PROBES.has(path) && status < 400) return ["debug", "request completed"];
  return ["info", "request completed"];
}
