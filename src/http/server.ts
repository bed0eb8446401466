import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Logger } from "pino";
import { type Authentication, type AuthGuard, TooManyAuthFailuresError } from "../auth/guard.js";
import { AuthUnavailableError } from "../auth/key-set.js";
import type { RequestContext } from "../context.js";
import { isDatabaseUnavailable } from "../db/errors.js";
import { OverloadedError } from "../db/group-commit.js";
import { InvalidInputError } from "../validation.js";
import { type AccessRecord, logAccessWhenDone } from "./access-log.js";
import { answerAfterDraining, preparseGraphqlBody } from "./body.js";
import { applyCors } from "./cors.js";
import { armDeadline } from "./deadline.js";
import { HttpError, sendError } from "./errors.js";
import { clientAddress, requestIdOf } from "./request.js";
import { createRouter, type Route } from "./router.js";

export const GRAPHQL_PATH = "/graphql";
const API_PREFIX = "/api/v1/tokens/";

/** What yoga gets from the HTTP server before its own context factory runs. */
export interface GraphqlScope {
  readonly requestId: string;
  readonly clientAddress: string;
  /** The request's access-log record: yoga adds the user, the operation and auth refusals. */
  readonly access: AccessRecord;
}

export interface HttpServerDeps {
  readonly routes: readonly Route[];
  /** Serves GRAPHQL_PATH (yoga), which authenticates in its own context factory. */
  readonly graphql: (req: IncomingMessage, res: ServerResponse, scope: GraphqlScope) => Promise<void>;
  readonly guard: AuthGuard;
  readonly context: (auth: Authentication, requestId: string) => RequestContext;
  readonly logger: Logger;
  readonly trustedProxies: number;
  /** Which web origins may call the API from a browser (see cors.ts). */
  readonly corsOrigins: "*" | readonly string[];
  /** The webhook's path: called by RevenueCat's servers, never by a page, so it gets no CORS. */
  readonly webhookPath: string;
  /** How long a request may wait on the database before it is answered 503 (see deadline.ts). */
  readonly deadlineMs: number;
}

/**
 * The HTTP entrance: request ids, the client address, routing, authentication of user routes, and the
 * error edge that turns every failure into one JSON shape. Routes are thin and throw; this answers.
 */
export function createHttpServer(deps: HttpServerDeps): Server {
  const route = createRouter(deps.routes);
  const anonymous: Authentication = { viewer: null, authError: null };

  async function serve(
    req: IncomingMessage,
    res: ServerResponse,
    requestId: string,
    address: string,
    access: AccessRecord,
  ): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const path = url.pathname.replace(/\/+$/, "") || "/";
    const api = path === GRAPHQL_PATH || (path.startsWith(API_PREFIX) && path !== deps.webhookPath);
    if (api && applyCors(req, res, deps.corsOrigins)) return;
    // Node keeps the first of repeated Authorization headers; which one a proxy or client meant is
    // anyone's guess, so the request is refused rather than answered for one of them.
    if ((req.headersDistinct.authorization?.length ?? 0) > 1) {
      throw new HttpError(400, "Send one Authorization header, not several", "BAD_REQUEST");
    }
    if (path === GRAPHQL_PATH) {
      await preparseGraphqlBody(req);
      return deps.graphql(req, res, { requestId, clientAddress: address, access });
    }
    const { route: target, params } = route(req.method ?? "GET", path);
    const auth =
      target.auth === "none" ? anonymous : await deps.guard.authenticate(req.headers.authorization, address);
    if (auth.viewer) access.userId = auth.viewer.userId;
    if (auth.authError) access.authFailure = auth.authError;
    if (target.auth !== "none" && !auth.viewer) {
      const message = auth.authError ?? "Authentication required: send Authorization: Bearer <token>";
      throw new HttpError(401, message, "UNAUTHENTICATED", {
        "www-authenticate": 'Bearer realm="token-ledger"',
      });
    }
    if (target.auth === "admin" && !auth.viewer?.isAdmin) {
      throw new HttpError(403, "This route needs the tokens:admin scope", "FORBIDDEN");
    }
    await target.handle(req, res, {
      url,
      address,
      access,
      params,
      context: deps.context(auth, requestId),
    });
  }

  /** Maps what went wrong to an answer; only the unexpected is logged as an error. */
  function answerError(
    req: IncomingMessage,
    res: ServerResponse,
    error: unknown,
    { requestId, record }: { requestId: string; record: AccessRecord },
  ): void {
    // Answered already by the deadline: whatever failed later has no one left to tell.
    if (res.writableEnded) return;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const path = req.url?.split("?")[0];
    if (error instanceof HttpError && error.status === 413) {
      answerAfterDraining(req, res, () => sendError(res, error));
    } else if (error instanceof HttpError) {
      sendError(res, error);
    } else if (error instanceof InvalidInputError) {
      sendError(res, new HttpError(400, error.message, "BAD_USER_INPUT"));
    } else if (error instanceof TooManyAuthFailuresError) {
      record.lockedOut = true;
      const headers = { "retry-after": String(error.retryAfterSeconds) };
      sendError(res, new HttpError(429, error.message, "RATE_LIMITED", headers));
    } else if (error instanceof OverloadedError) {
      const headers = { "retry-after": String(error.retryAfterSeconds) };
      sendError(res, new HttpError(503, error.message, "OVERLOADED", headers));
    } else if (error instanceof AuthUnavailableError) {
      // Logged where the key set failed to load, once per attempt rather than once per request.
      const headers = { "retry-after": String(error.retryAfterSeconds) };
      sendError(res, new HttpError(503, error.message, "AUTH_UNAVAILABLE", headers));
    } else if (isDatabaseUnavailable(error)) {
      deps.logger.warn({ path, requestId }, "database unavailable");
      const unavailable = "Database unavailable; try again shortly";
      sendError(res, new HttpError(503, unavailable, "DATABASE_UNAVAILABLE", { "retry-after": "5" }));
    } else {
      deps.logger.error({ err: error, path, requestId }, "request failed");
      sendError(res, new HttpError(500, `Internal error (request ${requestId}); it was logged`, "INTERNAL"));
    }
  }

  return createServer((req, res) => {
    const address = clientAddress(req, deps.trustedProxies);
    const access = { requestId: requestIdOf(req), clientAddress: address, record: {} };
    res.setHeader("x-request-id", access.requestId);
    logAccessWhenDone(deps.logger, req, res, access);
    const { requestId } = access;
    armDeadline(req, res, {
      deadlineMs: deps.deadlineMs,
      graphqlPath: GRAPHQL_PATH,
      logger: deps.logger,
      requestId,
    });
    serve(req, res, access.requestId, address, access.record).catch((error: unknown) =>
      answerError(req, res, error, access),
    );
  });
}
