import { type Client, createClient } from "graphql-ws";

/**
 * The console's one connection to the server: /graphql over HTTP with the operator's token, and one
 * graphql-ws socket for live balances. The token lives in session storage: gone when the tab closes.
 */
const TOKEN_KEY = "token-ledger:console-token";

export type Access = "admin" | "read";

export class GraphqlError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

/** Moves a token from the URL's fragment into session storage; true when there was one. */
export function takeTokenFromUrl(): boolean {
  const match = /^#token=([^&]+)/.exec(location.hash);
  if (!match?.[1]) return false;
  sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
  // The token leaves the address bar (and so the history) at once.
  history.replaceState(null, "", `${location.pathname}#/users`);
  return true;
}

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value: string) => sessionStorage.setItem(TOKEN_KEY, value.trim()),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** The token's subject, for the header only: the server decides what the token may do. */
export function subjectOf(jwt: string): string {
  try {
    const payload = JSON.parse(atob((jwt.split(".")[1] ?? "").replace(/-/g, "+").replace(/_/g, "/")));
    return typeof payload.sub === "string" ? payload.sub : "?";
  } catch {
    return "?";
  }
}

export async function gql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const response = await fetch("/graphql", {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token.get() ?? ""}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json().catch(() => ({}))) as {
    data?: T;
    errors?: { message: string; extensions?: { code?: string } }[];
    error?: { message: string; code?: string };
  };
  const first =
    body.errors?.[0] ?? (body.error ? { message: body.error.message, extensions: body.error } : null);
  if (first) throw new GraphqlError(first.message, first.extensions?.code);
  if (!body.data) throw new GraphqlError(`The server answered ${response.status}`, undefined);
  return body.data;
}

let socket: Client | undefined;

export function live(): Client {
  socket ??= createClient({
    url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`,
    connectionParams: () => ({ authorization: `Bearer ${token.get() ?? ""}` }),
    lazy: true,
  });
  return socket;
}

export function closeLive(): void {
  void socket?.dispose();
  socket = undefined;
}
