import type { IncomingMessage, ServerResponse } from "node:http";
import getRawBody from "raw-body";
import { HttpError } from "./errors.js";

export const MAX_BODY_BYTES = 1024 * 1024;

const tooLarge = (limit: number) =>
  new HttpError(413, `Request body exceeds ${limit} bytes`, "PAYLOAD_TOO_LARGE");

/** The body as text, refusing more than `limit` bytes with 413 before reading it all. */
export async function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<string> {
  try {
    return await getRawBody(req, { limit, encoding: "utf8" });
  } catch (error) {
    if ((error as { type?: string }).type === "entity.too.large") throw tooLarge(limit);
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

/**
 * Reads a POST /graphql JSON body (bounded, 413 past the limit) and hands it to yoga already parsed,
 * as Express and Fastify do: yoga then takes `req.body` as it is instead of piping the request through
 * web streams, which cost more CPU per request than the rest of a simple query. A body yoga should
 * judge itself (not JSON, not an object, empty) is handed over as text, and yoga answers as usual.
 */
export async function preparseGraphqlBody(req: IncomingMessage): Promise<void> {
  if (req.method !== "POST") return;
  const raw = await readBody(req);
  const type = req.headers["content-type"] ?? "";
  let parsed: unknown;
  try {
    parsed = type.includes("json") ? JSON.parse(raw) : undefined;
  } catch {
    parsed = undefined;
  }
  const usable =
    typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) && Object.keys(parsed).length > 0;
  (req as IncomingMessage & { body?: unknown }).body = usable ? parsed : raw;
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
