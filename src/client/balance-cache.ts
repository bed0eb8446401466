import type { BalanceReading, StorageLike } from "./types.js";

interface Stored extends BalanceReading {
  user: string;
}

export interface BalanceCache {
  /** The stored balance of the token's user, or null (none, another user's, unreadable). */
  load(token: string | null): Promise<BalanceReading | null>;
  save(reading: BalanceReading): void;
}

/**
 * The last confirmed balance in the app's storage (AsyncStorage), so a restarted app shows it at once.
 * It records whose balance it is (the token's `sub`), so after a sign-out and another user's sign-in
 * the first user's balance is never shown. It holds no token: tokens belong in the keychain.
 */
export function createBalanceCache(
  storage: StorageLike | undefined,
  key: string,
  log: (line: string) => void,
): BalanceCache {
  let user: string | null = null;
  return {
    async load(token) {
      user = token ? subjectOf(token) : null;
      if (!storage || !user) return null;
      try {
        const stored = JSON.parse((await storage.getItem(key)) ?? "null") as Stored | null;
        if (stored?.user !== user || typeof stored.balance !== "number") return null;
        return { balance: stored.balance, version: stored.version, lastUpdated: stored.lastUpdated };
      } catch {
        return null;
      }
    },
    save(reading) {
      if (!storage || !user) return;
      const stored: Stored = { user, ...reading };
      Promise.resolve()
        .then(() => storage.setItem(key, JSON.stringify(stored)))
        .catch((error: unknown) => log(`Could not store the balance: ${String(error)}`));
    },
  };
}

/** The JWT's `sub`, read without verifying (the server verifies); only compared, never trusted. */
function subjectOf(token: string): string | null {
  const payload = token.split(".")[1];
  if (!payload || typeof atob !== "function") return null;
  try {
    const base64 = payload.replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, "="))) as {
      sub?: unknown;
    };
    return typeof claims.sub === "string" ? claims.sub : null;
  } catch {
    return null;
  }
}
