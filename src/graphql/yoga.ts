import { EnvelopArmor } from "@escape.tech/graphql-armor";
import { useDisableIntrospection } from "@graphql-yoga/plugin-disable-introspection";
import { createYoga, type YogaServerInstance } from "graphql-yoga";
import { type Authentication, type AuthGuard, TooManyAuthFailuresError } from "../auth/guard.js";
import type { Config } from "../config.js";
import { type AppServices, createContext, type GraphQLContext } from "../context.js";
import type { AccessRecord } from "../http/access-log.js";
import {
  maskError,
  rethrowForClient,
  useAccessRecord,
  useOperationTimer,
  useRequestErrorLog,
} from "./plugins.js";
import { schema } from "./schema.js";

/** What the HTTP server or the WebSocket layer hands yoga before our context factory runs. */
export interface ServerContext {
  readonly requestId?: string;
  readonly clientAddress?: string;
  /** Set by the WebSocket layer, which authenticated the connection once at connection_init. */
  readonly auth?: Authentication;
  /** The HTTP request's access-log record (absent over WebSocket). */
  readonly access?: AccessRecord;
}

export type Yoga = YogaServerInstance<ServerContext, GraphQLContext>;

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
  const log = services.logger;
  return createYoga<ServerContext, GraphQLContext>({
    schema,
    graphqlEndpoint: "/graphql",
    // GraphiQL (development only) is served before yoga by graphiql.ts, from the package itself.
    graphiql: false,
    // CORS is answered by the HTTP server, the same for GraphQL and REST (src/http/cors.ts).
    cors: false,
    landingPage: false,
    batching: false,
    maskedErrors: { maskError },
    logging: {
      debug: (...args) => log.debug(args.map(String).join(" ")),
      info: (...args) => log.info(args.map(String).join(" ")),
      warn: (...args) => log.warn(args.map(String).join(" ")),
      // Errors are logged by useRequestErrorLog, with the request's id.
      error: () => undefined,
    },
    plugins: [
      ...armor.protect().plugins,
      ...(config.graphqlIntrospection ? [] : [useDisableIntrospection()]),
      useOperationTimer(services.metrics),
      useRequestErrorLog(log),
      useAccessRecord(),
    ],
    context: async (initial) => {
      const header = (initial as { request?: Request }).request?.headers.get("authorization");
      const access = initial.access ?? {};
      const auth =
        initial.auth ??
        (await guard.authenticate(header, initial.clientAddress ?? "unknown").catch((error: unknown) => {
          if (error instanceof TooManyAuthFailuresError) access.lockedOut = true;
          return rethrowForClient(error);
        }));
      if (auth.viewer) access.userId = auth.viewer.userId;
      if (auth.authError) access.authFailure = auth.authError;
      return createContext(services, auth, initial.requestId ?? "ws");
    },
  });
}
