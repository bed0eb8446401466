import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import getRawBody from "raw-body";

export const MAX_BODY_BYTES = 1024 * 1024;

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/** The body as text, refusing more than `limit` bytes with 413 before reading it all. */
export async function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<string> {
  try {
    return await getRawBody(req, { limit, encoding: "utf8" });
  } catch (error) {
    const type = (error as { type?: string }).type;
    if (type === "entity.too.large")
      throw new HttpError(413, `Request body exceeds ${limit} bytes`, "PAYLOAD_TOO_LARGE");
    throw new HttpError(400, "Request body could not be read", "BAD_REQUEST");
  }
}

/** Parses a JSON body; malformed JSON is a 400 that says so. */
export async function readJson(
  req: IncomingMessage,
  limit = MAX_BODY_BYTES,
): Promise<{ raw: string; value: unknown }> {
  const raw = await readBody(req, limit);
  try {
    return { raw, value: JSON.parse(raw) as unknown };
  } catch {
    throw new HttpError(400, "Request body is not valid JSON", "BAD_REQUEST");
  }
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
    ...headers,
  });
  res.end(text);
}

export function sendError(res: ServerResponse, error: HttpError, headers: Record<string, string> = {}): void {
  sendJson(res, error.status, { error: { code: error.code, message: error.message } }, headers);
}

/** How much of a refused body we read and throw away so the client sees our answer. */
const DRAIN_MAX_BYTES = 64 * 1024 * 1024;
const DRAIN_MAX_MS = 10_000;

/**
 * Answers a request whose body we refused (413) only after the client has finished sending it, then
 * closes the connection. Closing while the client is still sending makes the kernel reset the
 * connection, and the client sees ECONNRESET instead of our 413. The discarding is bounded in bytes
 * and time; past either bound the connection is cut.
 */
export function answerAfterDraining(req: IncomingMessage, res: ServerResponse, answer: () => void): void {
  res.setHeader("connection", "close");
  if (req.complete || req.destroyed) {
    answer();
    return;
  }
  let discarded = 0;
  const cut = () => req.destroy();
  const timer = setTimeout(cut, DRAIN_MAX_MS);
  req.on("data", (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > DRAIN_MAX_BYTES) cut();
  });
  req.once("end", () => {
    clearTimeout(timer);
    answer();
  });
  req.once("close", () => clearTimeout(timer));
  req.resume();
}

/**
 * The caller's address. Each of the `trustedProxies` proxies in front of us appends the address it
 * saw to X-Forwarded-For, so counting that many hops back from our socket's peer gives the last
 * address no client could write; everything further left is the client's to invent.
 */
export function clientAddress(req: IncomingMessage, trustedProxies: number): string {
  const peer = req.socket.remoteAddress ?? "unknown";
  if (trustedProxies === 0) return peer;
  const header = req.headers["x-forwarded-for"];
  const forwarded = (Array.isArray(header) ? header.join(",") : (header ?? ""))
    .split(",")
    .map((hop) => hop.trim())
    .filter(Boolean);
  const hops = [peer, ...forwarded.reverse()];
  return hops[Math.min(trustedProxies, hops.length - 1)] ?? peer;
}

const CONNECTION_ERROR_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "CONNECTION_ENDED",
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
]);

/**
 * True when an error means the database cannot be reached (as opposed to a query it refused): the
 * caller answers 503 at once and the pool reconnects by itself when the server is back.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current; depth += 1) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && (CONNECTION_ERROR_CODES.has(code) || /^(08|57P0)/.test(code)))
      return true;
    // drizzle keeps the driver's error as `cause`; GraphQL wraps resolver errors as `originalError`.
    const next = current as { cause?: unknown; originalError?: unknown };
    current = next.originalError ?? next.cause;
  }
  return false;
}

/** Equal in constant time: both sides are hashed first, so not even their lengths leak. */
export function constantTimeEqual(a: string, b: string): boolean {
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(a), digest(b));
}
