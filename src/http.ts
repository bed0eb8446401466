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
