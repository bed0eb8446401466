import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import { sendJson } from "./errors.js";

/** How long a client is asked to wait before retrying a request the database did not answer in time. */
export const DEADLINE_RETRY_AFTER_SECONDS = 2;

const MESSAGE =
  "The database did not answer in time; try again shortly. If this request wrote, its outcome is unknown: " +
  "it may still be applied when the database answers, so retry it with the same idempotency key.";

/**
 * The request deadline. A database that stops answering without closing its connections (a paused
 * server, a stuck disk, a partition that drops nothing) would leave every request that waits on it
 * hanging until the client gives up. So a request still unanswered `deadlineMs` after it arrived in
 * full is answered here: 503 DATABASE_UNAVAILABLE with Retry-After, in GraphQL's error shape on
 * /graphql and REST's elsewhere (RevenueCat retries a webhook answered 503). The work itself is not
 * stopped (a statement already sent may still commit), which is why the answer says a write's outcome
 * is unknown and to retry with the same idempotency key: a retry then changes nothing twice.
 * Streaming answers (server-sent events) are left alone once their headers are out.
 */
export function armDeadline(
  req: IncomingMessage,
  res: ServerResponse,
  options: { deadlineMs: number; graphqlPath: string; logger: Logger; requestId: string },
): void {
  const fire = () => {
    if (res.headersSent || res.writableEnded) return;
    // Time spent receiving a slow client's body is not the database's: wait for the body first.
    if (!req.complete) {
      timer = setTimeout(fire, options.deadlineMs);
      return;
    }
    const path = req.url?.split("?")[0] ?? "/";
    options.logger.warn(
      { path, requestId: options.requestId, deadlineMs: options.deadlineMs },
      "request deadline reached waiting on the database",
    );
    sendDeadlineAnswer(req, res, path.replace(/\/+$/, "") === options.graphqlPath);
  };
  let timer = setTimeout(fire, options.deadlineMs);
  res.once("close", () => clearTimeout(timer));
}

function sendDeadlineAnswer(req: IncomingMessage, res: ServerResponse, graphql: boolean): void {
  const retryAfter = DEADLINE_RETRY_AFTER_SECONDS;
  // The connection may still carry the abandoned request's work: the client's next one goes on a new one.
  const headers = { "retry-after": String(retryAfter), connection: "close" };
  const extensions = { code: "DATABASE_UNAVAILABLE", retryAfterSeconds: retryAfter, outcome: "unknown" };
  if (!graphql) {
    sendJson(
      res,
      503,
      {
        error: {
          code: "DATABASE_UNAVAILABLE",
          message: MESSAGE,
          retryAfterSeconds: retryAfter,
          outcome: "unknown",
        },
      },
      headers,
    );
    return;
  }
  const accepted = req.headers.accept?.includes("application/graphql-response+json");
  sendJson(
    res,
    503,
    { errors: [{ message: MESSAGE, extensions }] },
    {
      ...headers,
      "content-type": `application/${accepted ? "graphql-response+" : ""}json; charset=utf-8`,
    },
  );
}
