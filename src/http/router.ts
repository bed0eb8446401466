import type { IncomingMessage, ServerResponse } from "node:http";
import type { RequestContext } from "../context.js";
import type { AccessRecord } from "./access-log.js";
import { HttpError } from "./errors.js";

export type Method = "GET" | "POST";

/** What a route handler gets beside the raw request and response. */
export interface RouteRequest {
  readonly url: URL;
  /** The caller's address, for failed-authentication counting. */
  readonly address: string;
  readonly context: RequestContext;
  /** What the request's access-log line will say beyond status and duration. */
  readonly access: AccessRecord;
}

export interface Route {
  readonly method: Method;
  readonly path: string;
  /**
   * "user": the server authenticates first and answers 401 without a valid token; "admin" also
   * answers 403 to a valid token without the admin scope.
   */
  readonly auth: "user" | "admin" | "none";
  handle(req: IncomingMessage, res: ServerResponse, request: RouteRequest): Promise<void>;
}

/** Exact-path routing: an unknown path is 404, a known path with another method 405 with Allow. */
export function createRouter(routes: readonly Route[]): (method: string, path: string) => Route {
  const byPath = new Map<string, Map<string, Route>>();
  for (const route of routes) {
    const methods = byPath.get(route.path) ?? new Map<string, Route>();
    methods.set(route.method, route);
    byPath.set(route.path, methods);
  }
  return (method, path) => {
    const methods = byPath.get(path);
    if (!methods) throw new HttpError(404, "Not found", "NOT_FOUND");
    const route = methods.get(method) ?? (method === "HEAD" ? methods.get("GET") : undefined);
    if (route) return route;
    const allow = [...methods.keys()].join(", ");
    throw new HttpError(405, `Use ${allow}`, "METHOD_NOT_ALLOWED", { allow });
  };
}
