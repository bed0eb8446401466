import type { TokenClientOptions } from "./types.js";

/**
 * The one place tokens come from, for HTTP and the WebSocket alike. A refresh is shared: callers that
 * find the token expired at the same time wait on one `refreshToken()` call, and a caller whose
 * token was already replaced while its request was out takes the new one without refreshing again.
 */
export interface TokenSource {
  /** How many refreshes have finished; read it before using a token, hand it to `refresh`. */
  readonly generation: number;
  get(): Promise<string | null>;
  /** A fresh token, or null when there is no way to get one. */
  refresh(generationSeen: number): Promise<string | null>;
}

export function createTokenSource(
  getToken: TokenClientOptions["getToken"],
  refreshToken: TokenClientOptions["refreshToken"],
): TokenSource {
  let generation = 0;
  let latest: string | null = null;
  let refreshing: Promise<string | null> | undefined;

  const refreshOnce = async (): Promise<string | null> => {
    if (!refreshToken) return null;
    try {
      const returned = await refreshToken();
      latest = (typeof returned === "string" && returned) || ((await getToken()) ?? null);
      return latest;
    } finally {
      generation += 1;
      refreshing = undefined;
    }
  };

  return {
    get generation() {
      return generation;
    },
    async get() {
      return (await getToken()) ?? null;
    },
    refresh(generationSeen) {
      if (generationSeen < generation && latest) return Promise.resolve(latest);
      refreshing ??= refreshOnce();
      return refreshing;
    },
  };
}
