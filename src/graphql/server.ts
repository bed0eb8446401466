import type { Server } from "node:http";
import { EnvelopArmor } from "@escape.tech/graphql-armor";
import { useCSRFPrevention } from "@graphql-yoga/plugin-csrf-prevention";
import { useDisableIntrospection } from "@graphql-yoga/plugin-disable-introspection";
import { type ExecutionArgs, GraphQLError, getOperationAST } from "graphql";
import { useServer } from "graphql-ws/use/ws";
import {
  createYoga,
  type Plugin,
  useErrorHandler,
  type YogaServerInstance,
  maskError as yogaMaskError,
} from "graphql-yoga";
import { WebSocketServer } from "ws";
import { type Authentication, type AuthGuard, TooManyAuthFailuresError } from "../auth/guard.js";
import type { Config } from "../config.js";
import type { AppServices, GraphQLContext } from "../context.js";
import { clientAddress, isDatabaseUnavailable } from "../http.js";
import { schema } from "./schema.js";

/** What the HTTP server or the WebSocket layer hands yoga before our context factory runs. */
export interface ServerContext {
  readonly requestId?: string;
  readonly clientAddress?: string;
  /** Set by the WebSocket layer, which authenticated the connection once at connection_init. */
  readonly auth?: Authentication;
}

export type Yoga = YogaServerInstance<ServerContext, GraphQLContext>;

/** Subscriptions one WebSocket connection may hold at once. */
export const MAX_SUBSCRIPTIONS_PER_CONNECTION = 20;

/** Close code for a missing, bad or expired token: reconnect with a fresh token. */
export const CLOSE_TOKEN_EXPIRED = 4401;
/** Close code for a client address blocked after too many failed authentications. */
export const CLOSE_RATE_LIMITED = 4429;

/** Limits on what one GraphQL document may ask for; the schema's deepest honest query is depth 6. */
export const GRAPHQL_LIMITS = {
  maxDepth: 8,
  maxAliases: 10,
  maxTokens: 1000,
  maxCost: 5000,
  maxDirectives: 20,
};

export function createYogaServer(deps: { config: Config; services: AppServices; guard: AuthGuard }): Yoga {
  const { config, services, guard } = deps;
  const armor = new EnvelopArmor({
    // Introspection is exempt (GraphiQL's own query is deeper); the schema itself has no cycles.
    maxDepth: { n: GRAPHQL_LIMITS.maxDepth, flattenFragments: false },
    maxAliases: { n: GRAPHQL_LIMITS.maxAliases },
    maxTokens: { n: GRAPHQL_LIMITS.maxTokens },
    costLimit: { maxCost: GRAPHQL_LIMITS.maxCost },
    maxDirectives: { n: GRAPHQL_LIMITS.maxDirectives },
    blockFieldSuggestion: { enabled: config.nodeEnv === "production" },
  });
  return createYoga<ServerContext, GraphQLContext>({
    schema,
    graphqlEndpoint: "/graphql",
    graphiql:
      config.nodeEnv === "production" ? false : { subscriptionsProtocol: "WS", title: "token-ledger" },
    landingPage: false,
    batching: false,
    maskedErrors: { maskError: maskError() },
    logging: {
      debug: (...args) => services.logger.debug(args.map(String).join(" ")),
      info: (...args) => services.logger.info(args.map(String).join(" ")),
      warn: (...args) => services.logger.warn(args.map(String).join(" ")),
      // Errors are logged by useRequestErrorLog, with the request's id.
      error: () => undefined,
    },
    plugins: [
      ...armor.protect().plugins,
      // A request a browser could send cross-site without a preflight must carry this header.
      useCSRFPrevention({ requestHeaders: ["x-graphql-csrf"] }),
      ...(config.graphqlIntrospection ? [] : [useDisableIntrospection()]),
      useOperationTimer(services),
      useRequestErrorLog(services),
    ],
    context: async (initial) => {
      const request = (initial as { request?: Request }).request;
      const auth =
        initial.auth ??
        (await guard
          .authenticate(request?.headers.get("authorization"), initial.clientAddress ?? "unknown")
          .catch(rateLimitedAsGraphqlError));
      const requestId = initial.requestId ?? "ws";
      return { ...services, ...auth, requestId, logger: services.logger.child({ requestId }) };
    },
  });
}

/** A blocked address gets 429 in GraphQL's own error shape, so GraphQL clients can show it. */
function rateLimitedAsGraphqlError(error: unknown): never {
  if (!(error instanceof TooManyAuthFailuresError)) throw error;
  throw new GraphQLError(error.message, {
    extensions: {
      code: "RATE_LIMITED",
      retryAfterSeconds: error.retryAfterSeconds,
      http: { status: 429, headers: { "retry-after": String(error.retryAfterSeconds) } },
    },
  });
}

/**
 * Masking stays on: unexpected errors become "Unexpected error." with nothing internal. A database
 * that cannot be reached is the one unexpected error a client can act on, so it gets its own code.
 */
function maskError() {
  return (error: unknown, message: string, isDev?: boolean) =>
    isDatabaseUnavailable(error)
      ? new GraphQLError("Database unavailable; try again shortly", {
          extensions: {
            code: "DATABASE_UNAVAILABLE",
            http: { status: 503, headers: { "retry-after": "5" } },
          },
        })
      : yogaMaskError(error, message, isDev);
}

/**
 * Logs what went wrong unexpectedly (not the GraphQL errors we raise on purpose) through the
 * request's logger, so the line carries the request id that the client can quote.
 */
function useRequestErrorLog(services: AppServices): Plugin {
  return useErrorHandler(({ errors, context }) => {
    // Execution errors arrive with the execution args, whose contextValue is our context.
    const ours =
      (context as { contextValue?: Partial<GraphQLContext> }).contextValue ??
      (context as Partial<GraphQLContext>);
    const log = ours.logger ?? services.logger;
    for (const error of errors) {
      // Errors we raise on purpose are GraphQLErrors all the way down; anything else is unexpected.
      const original = (error as GraphQLError).originalError;
      if (!original || original instanceof GraphQLError) continue;
      if (isDatabaseUnavailable(original)) log.warn("database unavailable");
      else log.error({ err: original }, "graphql error");
    }
  }) as Plugin;
}

function useOperationTimer(services: AppServices): Plugin {
  return {
    onExecute({ args }) {
      const started = process.hrtime.bigint();
      return {
        onExecuteDone() {
          const seconds = Number(process.hrtime.bigint() - started) / 1e9;
          const operation = getOperationAST(args.document, args.operationName)?.name?.value ?? "anonymous";
          services.metrics.graphqlDuration.observe({ operation }, seconds);
        },
      };
    },
  };
}

export interface GraphqlWs {
  close(code: number, reason: string): Promise<void>;
}

interface ConnectionExtra {
  auth?: Authentication;
  expiryTimer?: NodeJS.Timeout;
}

/**
 * graphql-ws on the same server and path as /graphql, run through yoga's envelop so the same
 * plugins, context and authentication apply. The token comes once, in connectionParams.authorization.
 */
export function attachGraphqlWs(deps: {
  server: Server;
  yoga: Yoga;
  guard: AuthGuard;
  services: AppServices;
  trustedProxies: number;
}): GraphqlWs {
  const { server, yoga, guard, services } = deps;
  const wsServer = new WebSocketServer({ server, path: "/graphql" });
  const extras = new WeakMap<object, ConnectionExtra>();

  useServer<Record<string, unknown> | undefined>(
    {
      execute: (args) =>
        (args.rootValue as { execute: (a: ExecutionArgs) => unknown }).execute(args) as never,
      subscribe: (args) =>
        (args.rootValue as { subscribe: (a: ExecutionArgs) => unknown }).subscribe(args) as never,
      onConnect: async (ctx) => {
        const socket = ctx.extra.socket;
        const address = clientAddress(ctx.extra.request, deps.trustedProxies);
        // GraphiQL sends its Headers tab as connectionParams, so accept any capitalisation.
        const params = ctx.connectionParams ?? {};
        const header = Object.entries(params).find(([key]) => key.toLowerCase() === "authorization")?.[1];
        let auth: Authentication;
        try {
          auth = await guard.authenticate(typeof header === "string" ? header : undefined, address);
        } catch (error) {
          if (!(error instanceof TooManyAuthFailuresError)) throw error;
          socket.close(CLOSE_RATE_LIMITED, error.message);
          return false;
        }
        if (!auth.viewer) {
          socket.close(
            CLOSE_TOKEN_EXPIRED,
            truncateReason(`Unauthorized: ${auth.authError ?? "send connectionParams.authorization"}`),
          );
          return false;
        }
        const extra: ConnectionExtra = { auth };
        if (auth.viewer.expiresAt !== undefined) {
          const ms = Math.min(auth.viewer.expiresAt * 1000 - Date.now(), 2_147_483_647);
          extra.expiryTimer = setTimeout(
            () => socket.close(CLOSE_TOKEN_EXPIRED, "Unauthorized: token expired"),
            Math.max(ms, 0),
          );
        }
        extras.set(ctx, extra);
        services.metrics.wsConnections.inc();
        return true;
      },
      onClose: (ctx) => {
        const extra = extras.get(ctx);
        if (!extra) return;
        clearTimeout(extra.expiryTimer);
        services.metrics.wsConnections.dec();
      },
      onSubscribe: async (ctx, _id, params) => {
        // graphql-ws has already reserved this subscription's id when onSubscribe runs.
        if (Object.keys(ctx.subscriptions).length > MAX_SUBSCRIPTIONS_PER_CONNECTION) {
          return [
            new GraphQLError(`At most ${MAX_SUBSCRIPTIONS_PER_CONNECTION} subscriptions per connection`),
          ];
        }
        const auth = extras.get(ctx)?.auth;
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({ auth });
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
      },
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

/** WebSocket close reasons are limited to 123 bytes. */
function truncateReason(reason: string): string {
  return Buffer.byteLength(reason) <= 123 ? reason : `${reason.slice(0, 119)}...`;
}
