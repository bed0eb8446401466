import { AuthenticationError, bearerToken, type VerifyToken, type Viewer } from "./jwt.js";

export interface Authentication {
  readonly viewer: Viewer | null;
  /** Why the presented credential was refused, to tell the client; null when none was sent. */
  readonly authError: string | null;
  /** The credential was genuine but has expired: a fresh one will do. */
  readonly expired?: boolean;
}

/** The client's address failed to authenticate too often; it waits before trying bad credentials again. */
export class TooManyAuthFailuresError extends Error {
  override readonly name = "TooManyAuthFailuresError";
  constructor(readonly retryAfterSeconds: number) {
    super("Too many failed authentications; try again later");
  }
}

/** Which door a credential came through: each keeps its own count, so one cannot block the other. */
export type AuthDoor = "api" | "webhook";

/** Whether an address may try again: what a failure limit answers. */
export type FailureCheck =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly retryAfterSeconds: number };

/**
 * The failed-authentication limit the guard needs (rate-limits.ts implements it). Declared here, so
 * that auth/ imports nothing from the modules.
 */
export interface FailureLimits {
  /** Whether the address is blocked at this door already (no round trip). */
  authBlocked(door: AuthDoor, address: string): FailureCheck;
  /** Counts one failure of the address at this door. */
  authFailed(door: AuthDoor, address: string): Promise<FailureCheck>;
}

export interface AuthGuard {
  /**
   * Turns an `Authorization` value (HTTP header or graphql-ws connectionParams) into a viewer. A valid
   * token is always accepted, whatever others sent from the same address. A refused one is counted
   * against the address, except an expired token (a client that forgot to refresh is not guessing);
   * past the limit a refused credential throws TooManyAuthFailuresError instead of reporting why.
   */
  authenticate(header: string | null | undefined, address: string): Promise<Authentication>;
  /**
   * Counts a wrong webhook secret against the address and throws TooManyAuthFailuresError past the
   * limit. The webhook's count is its own: failed API tokens never block RevenueCat's deliveries.
   */
  webhookRefused(address: string): Promise<void>;
}

export function createAuthGuard(deps: { verify: VerifyToken; limits: FailureLimits }): AuthGuard {
  const { verify, limits } = deps;

  async function refused(door: AuthDoor, address: string): Promise<void> {
    // An address already known to be blocked pays no round trip to the shared counter.
    const known = limits.authBlocked(door, address);
    const check = known.allowed ? await limits.authFailed(door, address) : known;
    if (!check.allowed) throw new TooManyAuthFailuresError(check.retryAfterSeconds);
  }

  return {
    async authenticate(header, address) {
      if (!header) return { viewer: null, authError: null };
      const token = bearerToken(header);
      try {
        if (!token) throw new AuthenticationError("Authorization must be 'Bearer <token>'");
        return { viewer: await verify(token), authError: null };
      } catch (error) {
        if (!(error instanceof AuthenticationError)) throw error;
        if (!error.expired) await refused("api", address);
        return { viewer: null, authError: error.message, expired: error.expired };
      }
    },
    webhookRefused: (address) => refused("webhook", address),
  };
}
