import type { IncomingMessage, ServerResponse } from "node:http";

/** Headers a browser app sends: the token, JSON, and the spend's idempotency key. */
const ALLOWED_HEADERS = "authorization, content-type, accept, idempotency-key, x-request-id";
/** Headers a browser app may read: when to retry, and the id to quote in a support request. */
const EXPOSED_HEADERS = "retry-after, x-request-id";

/**
 * CORS for the API a browser app calls (/graphql and the REST routes; not the webhook, the probes or
 * /metrics, which no page calls). The only credential is the Authorization header, which a page on
 * another site cannot read or make the browser attach, so any origin may be allowed ("*", the
 * default) without credentials; CORS_ORIGINS narrows it to a list. Answers a preflight itself and
 * returns true then; otherwise adds the headers and returns false.
 */
export function applyCors(
  req: IncomingMessage,
  res: ServerResponse,
  origins: "*" | readonly string[],
): boolean {
  const origin = req.headers.origin;
  const preflight = req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined;
  if (origins !== "*") res.setHeader("vary", "Origin");
  const allowed = origin !== undefined && (origins === "*" || origins.includes(origin));
  if (allowed) {
    res.setHeader("access-control-allow-origin", origins === "*" ? "*" : origin);
    res.setHeader("access-control-expose-headers", EXPOSED_HEADERS);
  }
  if (!preflight) return false;
  if (allowed) {
    res.setHeader("access-control-allow-methods", "GET, POST");
    res.setHeader("access-control-allow-headers", ALLOWED_HEADERS);
    res.setHeader("access-control-max-age", "600");
  }
  res.writeHead(allowed ? 204 : 403).end();
  return true;
}
