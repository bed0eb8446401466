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
  /** The values of the route's `:name` segments, such as `{ id: "42" }`. */
  readonly params: Readonly<Record<string, string>>;
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

/**
 * Exact-path routing first, then paths with `:name` segments (one segment each, such as
 * `/api/v1/tokens/holds/:id/capture`): an unknown path is 404, a known path with another method 405
 * with Allow.
 */
export function createRouter(
  routes: readonly Route[],
): (method: string, path: string) => { route: Route; params: Record<string, string> } {
  const byPath = new Map<string, Map<string, Route>>();
  const patterns: { pattern: RegExp; names: string[]; path: string }[] = [];
  for (const route of routes) {
    let methods = byPath.get(route.path);
    if (!methods) {
      methods = new Map<string, Route>();
      byPath.set(route.path, methods);
      const names = [...route.path.matchAll(/:(\w+)/g)].map((match) => match[1] as string);
      if (names.length > 0) {
        const source = route.path.replace(/:\w+/g, "([^/]+)");
        patterns.push({ pattern: new RegExp(`^${source}$`), names, path: route.path });
      }
    }
    methods.set(route.method, route);
  }
  const find = (path: string): { path: string; params: Record<string, string> } | undefined => {
    if (byPath.has(path)) return { path, params: {} };
    for (const { pattern, names, path: template } of patterns) {
      const match = pattern.exec(path);
      if (!match) continue;
      const params: Record<string, string> = {};
      names.forEach((name, index) => {
        params[name] = decodeSegment(match[index + 1] as string);
      });
      return { path: template, params };
    }
    return undefined;
  };
  return (method, path) => {
    const found = find(path);
    const methods = found && byPath.get(found.path);
    if (!found || !methods) throw new HttpError(404, "Not found", "NOT_FOUND");
    const route = methods.get(method) ?? (method === "HEAD" ? methods.get("GET") : undefined);
    if (route) return { route, params: found.params };
    const allow = [...methods.keys()].join(", ");
    throw new HttpError(405, `Use ${allow}`, "METHOD_NOT_ALLOWED", { allow });
  };
}

/** A malformed escape (such as `%E0%A4%A`) is the client's mistake, not a server error. */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, "The path has a malformed escape", "BAD_REQUEST");
  }
}
