import { readingOf } from "./balance-sync.js";
import type { BalanceReading, StorageLike } from "./types.js";

interface Stored extends BalanceReading {
  user: string;
}

export interface BalanceCache {
  /** The stored balance of the current user, or null (none, another user's, unreadable). */
  load(): Promise<BalanceReading | null>;
  save(reading: BalanceReading): void;
  /** The signed-in user (the token's subject), whose stored values may be shown. */
  owner(): Promise<string | null>;
}

/**
 * The last confirmed balance in the app's storage (AsyncStorage), so a restarted app shows it at once.
 * It records whose balance it is (the token's `sub`), so after a sign-out and another user's sign-in
 * the first user's balance is never shown. It holds no token: tokens belong in the keychain.
 */
export function createBalanceCache(
  storage: StorageLike | undefined,
  key: string,
  token: () => Promise<string | null>,
  log: (line: string) => void,
): BalanceCache {
  const user = async () => subjectOf((await token().catch(() => null)) ?? "");
  let latest: BalanceReading | null = null;
  return {
    owner: user,
    async load() {
      const owner = await user();
      if (!storage || !owner) return null;
      try {
        const stored = JSON.parse((await storage.getItem(key)) ?? "null") as Stored | null;
        if (stored?.user !== owner || typeof stored.balance !== "number") return null;
        return readingOf(stored);
      } catch {
        return null;
      }
    },
    save(reading) {
      if (!storage) return;
      latest = reading;
      // Each write stores the latest reading, so writes that finish out of order still end on it.
      void user()
        .then((owner) => owner && latest && storage.setItem(key, JSON.stringify({ user: owner, ...latest })))
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
