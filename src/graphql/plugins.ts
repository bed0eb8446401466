import { GraphQLError, getOperationAST } from "graphql";
import { type Plugin, useErrorHandler, maskError as yogaMaskError } from "graphql-yoga";
import { TooManyAuthFailuresError } from "../auth/guard.js";
import { AuthUnavailableError } from "../auth/key-set.js";
import type { GraphQLContext } from "../context.js";
import { isDatabaseUnavailable } from "../db/errors.js";
import { OverloadedError } from "../db/group-commit.js";
import type { AccessRecord } from "../http/access-log.js";
import type { Metrics } from "../metrics.js";
import { InvalidInputError } from "../validation.js";

/** Errors mapped once, at the edge: each domain error a client can act on gets its own code. */
function clientError(error: unknown): GraphQLError | null {
  if (error instanceof InvalidInputError) {
    return new GraphQLError(error.message, { extensions: { code: "BAD_USER_INPUT" } });
  }
  if (error instanceof TooManyAuthFailuresError) {
    const retryAfter = String(error.retryAfterSeconds);
    return new GraphQLError(error.message, {
      extensions: {
        code: "RATE_LIMITED",
        retryAfterSeconds: error.retryAfterSeconds,
        http: { status: 429, headers: { "retry-after": retryAfter } },
      },
    });
  }
  if (error instanceof OverloadedError) {
    return new GraphQLError(error.message, {
      extensions: {
        code: "OVERLOADED",
        retryAfterSeconds: error.retryAfterSeconds,
        http: { status: 503, headers: { "retry-after": String(error.retryAfterSeconds) } },
      },
    });
  }
  if (error instanceof AuthUnavailableError) {
    const retryAfter = String(error.retryAfterSeconds);
    return new GraphQLError(error.message, {
      extensions: {
        code: "AUTH_UNAVAILABLE",
        retryAfterSeconds: error.retryAfterSeconds,
        http: { status: 503, headers: { "retry-after": retryAfter } },
      },
    });
  }
  if (isDatabaseUnavailable(error)) {
    return new GraphQLError("Database unavailable; try again shortly", {
      extensions: { code: "DATABASE_UNAVAILABLE", http: { status: 503, headers: { "retry-after": "5" } } },
    });
  }
  return null;
}

/** Throws the GraphQL form of a client error (used where yoga does not mask, such as the context). */
export function rethrowForClient(error: unknown): never {
  throw clientError(error) ?? error;
}

/** Masking stays on: anything unexpected becomes "Unexpected error." with nothing internal. */
export function maskError(error: unknown, message: string, isDev?: boolean): Error {
  const original = (error as GraphQLError).originalError ?? error;
  return clientError(original) ?? yogaMaskError(error, message, isDev);
}

/**
 * Logs what went wrong unexpectedly (not the errors we raise on purpose, nor a client's bad input)
 * through the request's logger, so the line carries the request id the client can quote.
 */
export function useRequestErrorLog(fallback: GraphQLContext["logger"]): Plugin {
  return useErrorHandler(({ errors, context }) => {
    // Execution errors arrive with the execution args, whose contextValue is our context.
    const ours =
      (context as { contextValue?: Partial<GraphQLContext> }).contextValue ??
      (context as Partial<GraphQLContext>);
    const log = ours.logger ?? fallback;
    for (const error of errors) {
      const original = (error as GraphQLError).originalError;
      if (!original || original instanceof GraphQLError) continue;
      if (isDatabaseUnavailable(original)) log.warn("database unavailable");
      else if (!clientError(original)) log.error({ err: original }, "graphql error");
    }
  }) as Plugin;
}

/**
 * Tells the request's access-log record which operation ran and which error codes it answered with
 * (the codes, never the messages or variables).
 */
export function useAccessRecord(): Plugin {
  return {
    onExecute({ args }) {
      const access = (args.contextValue as { access?: AccessRecord }).access;
      if (!access) return;
      access.operation = getOperationAST(args.document, args.operationName)?.name?.value ?? "anonymous";
      return {
        onExecuteDone({ result }) {
          if (!("errors" in result) || !result.errors?.length) return;
          access.errorCodes = result.errors.map((error) => String(error.extensions?.code ?? "UNKNOWN"));
        },
      };
    },
  };
}

export function useOperationTimer(metrics: Metrics): Plugin {
  return {
    onExecute({ args }) {
      const started = process.hrtime.bigint();
      return {
        onExecuteDone() {
          const seconds = Number(process.hrtime.bigint() - started) / 1e9;
          const operation = getOperationAST(args.document, args.operationName)?.name?.value ?? "anonymous";
          metrics.graphqlDuration.observe({ operation }, seconds);
        },
      };
    },
  };
}
