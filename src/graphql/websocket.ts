import type { IncomingMessage, Server } from "node:http";
import { type ExecutionArgs, GraphQLError } from "graphql";
import type { Context, SubscribePayload } from "graphql-ws";
import { type Extra, useServer } from "graphql-ws/use/ws";
import type { Logger } from "pino";
import { WebSocketServer } from "ws";
import { type Authentication, type AuthGuard, TooManyAuthFailuresError } from "../auth/guard.js";
import { AuthUnavailableError } from "../auth/key-set.js";
import { requestIdOf } from "../http/request.js";
import type { Metrics } from "../metrics.js";
import type { Yoga } from "./yoga.js";

/** Subscriptions one WebSocket connection may hold at once. */
export const MAX_SUBSCRIPTIONS_PER_CONNECTION = 20;

/**
 * Close code for an expired token (at connection_init, or when it expires on an open socket):
 * 4403, which graphql-ws clients retry by default, so a client with lazy connectionParams reconnects
 * with a fresh token by itself.
 */
export const CLOSE_TOKEN_EXPIRED = 4403;
/** Close code for a missing, malformed or forged token: 4401, which graphql-ws clients do not retry. */
export const CLOSE_UNAUTHORIZED = 4401;
/** Close code for a client address blocked after too many failed authentications (not retried). */
export const CLOSE_RATE_LIMITED = 4429;
/**
 * Close code when the identity provider's keys cannot be fetched, so the token could not be checked:
 * 4503, outside graphql-ws's fatal codes, so its clients (and @token-ledger/client) reconnect with
 * the same token after a pause.
 */
export const CLOSE_AUTH_UNAVAILABLE = 4503;

export interface GraphqlWs {
  close(code: number, reason: string): Promise<void>;
}

interface ConnectionState {
  auth: Authentication;
  /** The upgrade request's id (its X-Request-Id, or a new one); each operation's id extends it. */
  requestId: string;
  expiryTimer?: NodeJS.Timeout;
}

interface WsDeps {
  readonly server: Server;
  readonly yoga: Yoga;
  readonly guard: AuthGuard;
  readonly metrics: Metrics;
  /** The client address of an upgrade request (the same rule as for HTTP). */
  readonly addressOf: (request: IncomingMessage) => string;
  readonly logger: Logger;
}

type Ctx = Context<Record<string, unknown> | undefined, Extra>;

/**
 * graphql-ws on the same server and path as /graphql, run through yoga's envelop so the same
 * plugins, context and authentication apply. The token comes once, in connectionParams.authorization.
 */
export function attachGraphqlWs(deps: WsDeps): GraphqlWs {
  const wsServer = new WebSocketServer({ server: deps.server, path: "/graphql" });
  const connections = new WeakMap<object, ConnectionState>();

  useServer<Record<string, unknown> | undefined>(
    {
      execute: (args) =>
        (args.rootValue as { execute: (a: ExecutionArgs) => unknown }).execute(args) as never,
      subscribe: (args) =>
        (args.rootValue as { subscribe: (a: ExecutionArgs) => unknown }).subscribe(args) as never,
      onConnect: (ctx) => connect(deps, connections, ctx),
      onClose: (ctx, code, reason) => {
        logRefusal(deps, ctx, code, reason);
        const state = connections.get(ctx);
        if (!state) return;
        clearTimeout(state.expiryTimer);
        deps.metrics.wsConnections.dec();
      },
      onSubscribe: (ctx, id, params) => prepare(deps.yoga, connections.get(ctx), ctx, id, params),
    },
    wsServer,
  );

  return {
    close: (code, reason) =>
      new Promise<void>((resolve) => {
        for (const client of wsServer.clients) client.close(code, reason);
        wsServer.close(() => resolve());
      }),
  };
}

/** connection_init: authenticate once, and close the socket when the token expires. */
async function connect(
  deps: WsDeps,
  connections: WeakMap<object, ConnectionState>,
  ctx: Ctx,
): Promise<boolean> {
  const socket = ctx.extra.socket;
  // GraphiQL sends its Headers tab as connectionParams, so accept any capitalisation.
  const params = ctx.connectionParams ?? {};
  const header = Object.entries(params).find(([key]) => key.toLowerCase() === "authorization")?.[1];
  let auth: Authentication;
  try {
    auth = await deps.guard.authenticate(
      typeof header === "string" ? header : undefined,
      deps.addressOf(ctx.extra.request),
    );
  } catch (error) {
    if (error instanceof AuthUnavailableError) {
      socket.close(CLOSE_AUTH_UNAVAILABLE, truncateReason(error.message));
      return false;
    }
    if (!(error instanceof TooManyAuthFailuresError)) throw error;
    socket.close(CLOSE_RATE_LIMITED, error.message);
    return false;
  }
  if (!auth.viewer) {
    const reason = `Unauthorized: ${auth.authError ?? "send connectionParams.authorization"}`;
    socket.close(auth.expired ? CLOSE_TOKEN_EXPIRED : CLOSE_UNAUTHORIZED, truncateReason(reason));
    return false;
  }
  const state: ConnectionState = { auth, requestId: requestIdOf(ctx.extra.request) };
  if (auth.viewer.expiresAt !== undefined) {
    const ms = Math.min(auth.viewer.expiresAt * 1000 - Date.now(), 2_147_483_647);
    const expire = () => socket.close(CLOSE_TOKEN_EXPIRED, "Unauthorized: token expired");
    state.expiryTimer = setTimeout(expire, Math.max(ms, 0));
  }
  connections.set(ctx, state);
  deps.metrics.wsConnections.inc();
  return true;
}

/**
 * subscribe: parse and validate through yoga's envelop, with the connection's authentication and a
 * request id of the operation's own (`<connection's id>:<operation id>`), so its log lines can be told
 * apart like an HTTP request's.
 */
async function prepare(
  yoga: Yoga,
  state: ConnectionState | undefined,
  ctx: Ctx,
  id: string,
  params: SubscribePayload,
) {
  // graphql-ws has already reserved this subscription's id when onSubscribe runs.
  if (Object.keys(ctx.subscriptions).length > MAX_SUBSCRIPTIONS_PER_CONNECTION) {
    return [new GraphQLError(`At most ${MAX_SUBSCRIPTIONS_PER_CONNECTION} subscriptions per connection`)];
  }
  const requestId = state ? `${state.requestId}:${id}` : undefined;
  const enveloped = yoga.getEnveloped({ auth: state?.auth, requestId });
  const { schema, execute, subscribe, contextFactory, parse, validate } = enveloped;
  let document: ReturnType<typeof parse>;
  try {
    document = parse(params.query);
  } catch (error) {
    return [error instanceof GraphQLError ? error : new GraphQLError("Query could not be parsed")];
  }
  const errors = validate(schema, document);
  if (errors.length > 0) return errors;
  return {
    schema,
    operationName: params.operationName,
    document,
    variableValues: params.variables,
    contextValue: await contextFactory(),
    rootValue: { execute, subscribe },
  };
}

/**
 * A connection refused at connection_init is a warning, like a refused HTTP request: the close
 * reason the client got (never the token) and the client's address.
 */
function logRefusal(deps: WsDeps, ctx: Ctx, code: number | undefined, reason: string | undefined): void {
  if (code !== CLOSE_UNAUTHORIZED && code !== CLOSE_RATE_LIMITED) return;
  const fields = {
    transport: "websocket",
    path: "/graphql",
    closeCode: code,
    authFailure: reason,
    clientAddress: deps.addressOf(ctx.extra.request),
  };
  const locked = code === CLOSE_RATE_LIMITED;
  deps.logger.warn(
    locked ? { ...fields, lockedOut: true } : fields,
    locked ? "authentication locked out" : "authentication failed",
  );
}

/** WebSocket close reasons are limited to 123 bytes. */
function truncateReason(reason: string): string {
  return Buffer.byteLength(reason) <= 123 ? reason : `${reason.slice(0, 119)}...`;
}
