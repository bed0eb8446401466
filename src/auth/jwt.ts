import { createSecretKey } from "node:crypto";
import {
  decodeProtectedHeader,
  type JWTPayload,
  type JWTVerifyGetKey,
  errors as joseErrors,
  jwtVerify,
  SignJWT,
} from "jose";
import { LRUCache } from "lru-cache";
import type { Config } from "../config.js";
import { MAX_USER_ID_LENGTH } from "../db/schema.js";
import { isStorableText } from "../db/text.js";
import { AuthUnavailableError, createRemoteKeySet, type RemoteKeySet } from "./key-set.js";

export const ADMIN_SCOPE = "tokens:admin";
/** Read-only operators: the console shows them everything and lets them change nothing. */
export const READ_SCOPE = "tokens:read";

/** Who is calling: the token's subject is the user id the app also gives RevenueCat as app_user_id. */
export interface Viewer {
  readonly userId: string;
  /** The values of the configured admin claim (`scope` by default), split when it is a string. */
  readonly scopes: ReadonlySet<string>;
  readonly isAdmin: boolean;
  /** Seconds since the epoch; live connections close when it passes. */
  readonly expiresAt: number | undefined;
}

export type VerifyToken = (token: string) => Promise<Viewer>;

export class AuthenticationError extends Error {
  override readonly name = "AuthenticationError";
  constructor(
    message: string,
    /** The token was genuine but has expired: the client should refresh it, not be counted as an attacker. */
    readonly expired = false,
  ) {
    super(message);
  }
}

/** What the verifier needs of the configuration; the admin claim defaults to `scope` / `tokens:admin`. */
export type VerifierSettings = Pick<Config["jwt"], "secret" | "issuer" | "audience" | "jwksUrl"> &
  Partial<Pick<Config["jwt"], "previousSecret" | "adminClaim" | "adminValue">>;

const CLOCK_TOLERANCE_SECONDS = 30;
/** Verified tokens remembered, so a client's every request does not pay for signature checks again. */
const VERIFIED_CACHE_SIZE = 50_000;

interface Verified {
  readonly viewer: Viewer;
  /** The key set's generation it was verified under; undefined for a JWT_SECRET token. */
  readonly keySetGeneration: number | undefined;
}

/**
 * Builds the one verifier that both HTTP and WebSocket use. Algorithms are pinned to what is
 * configured: HS256 with JWT_SECRET (or, while rotating, JWT_SECRET_PREVIOUS); RS256, ES256 and EdDSA
 * (Better Auth's default) from the key set; "none" never verifies. A key-set outage throws
 * AuthUnavailableError, never AuthenticationError: the token was not found wrong.
 */
export function createTokenVerifier(jwt: VerifierSettings, keySet?: RemoteKeySet): VerifyToken {
  // A KeyObject lets jose use node:crypto directly instead of importing a WebCrypto key per call.
  const secret = jwt.secret ? createSecretKey(Buffer.from(jwt.secret)) : undefined;
  const previous = jwt.previousSecret ? createSecretKey(Buffer.from(jwt.previousSecret)) : undefined;
  const remote = keySet ?? (jwt.jwksUrl ? createRemoteKeySet({ url: jwt.jwksUrl }) : undefined);
  const algorithms = [...(secret ? ["HS256"] : []), ...(remote ? ["RS256", "ES256", "EdDSA"] : [])];
  if (algorithms.length === 0) throw new Error("No JWT_SECRET or JWKS_URL configured");
  const options = {
    algorithms,
    issuer: jwt.issuer,
    audience: jwt.audience,
    clockTolerance: CLOCK_TOLERANCE_SECONDS,
    requiredClaims: ["sub", "exp"],
  };
  const admin = { claim: jwt.adminClaim ?? "scope", value: jwt.adminValue ?? ADMIN_SCOPE };

  const getKey: JWTVerifyGetKey = async (header, token) => {
    if (header.alg === "HS256" && secret) return secret;
    if (remote) return remote.getKey(header, token);
    throw new AuthenticationError("Token algorithm not accepted");
  };

  async function verifySignature(token: string): Promise<JWTPayload> {
    try {
      return (await jwtVerify(token, getKey, options)).payload;
    } catch (error) {
      // While JWT_SECRET is rotated, a token the previous secret signed is still good.
      const signatureFailed = error instanceof joseErrors.JWSSignatureVerificationFailed;
      if (!(previous && signatureFailed && decodeProtectedHeader(token).alg === "HS256")) throw error;
      return (await jwtVerify(token, previous, { ...options, algorithms: ["HS256"] })).payload;
    }
  }

  // The key is the whole token, signature included, so only the exact token that verified can hit;
  // an entry lives no longer than the token itself, and not past a change of the key set (a key the
  // provider removed must stop verifying the tokens already seen, too).
  const verified = new LRUCache<string, Verified>({ max: VERIFIED_CACHE_SIZE, ttlAutopurge: false });

  return async (token) => {
    const cached = verified.get(token);
    if (cached && (await stillVerified(cached, remote))) return cached.viewer;
    const generation = remote?.generation();
    let payload: JWTPayload;
    try {
      payload = await verifySignature(token);
    } catch (error) {
      if (error instanceof AuthUnavailableError) throw error;
      throw new AuthenticationError(describeJoseError(error), error instanceof joseErrors.JWTExpired);
    }
    const viewer = viewerOf(payload, admin);
    const ttl = ((payload.exp ?? 0) + CLOCK_TOLERANCE_SECONDS) * 1000 - Date.now();
    // A token that is not yet valid (nbf) is refused above, so a cached one is valid until it expires.
    const fromKeySet = remote !== undefined && decodeProtectedHeader(token).alg !== "HS256";
    if (ttl > 0)
      verified.set(token, { viewer, keySetGeneration: fromKeySet ? generation : undefined }, { ttl });
    return viewer;
  };
}

/** A remembered key-set token holds while the key set, refreshed when due, is the one it verified under. */
async function stillVerified(entry: Verified, keySet: RemoteKeySet | undefined): Promise<boolean> {
  if (entry.keySetGeneration === undefined || !keySet) return true;
  await keySet.refreshIfDue();
  return keySet.generation() === entry.keySetGeneration;
}

function viewerOf(payload: JWTPayload, admin: { claim: string; value: string }): Viewer {
  // jose checks that `sub` is present, not its type: a numeric subject would key the user's live
  // updates by a number and never match, so anything but a storable non-empty string is refused.
  const userId: unknown = payload.sub;
  if (
    typeof userId !== "string" ||
    userId.length === 0 ||
    userId.length > MAX_USER_ID_LENGTH ||
    !isStorableText(userId)
  ) {
    throw new AuthenticationError("Token subject must be a non-empty string of at most 255 characters");
  }
  const scopes = new Set(claimValues(payload[admin.claim]));
  return { userId, scopes, isAdmin: scopes.has(admin.value), expiresAt: payload.exp };
}

/**
 * OAuth's `scope` is one space-separated string; Auth0's RBAC `permissions` and Okta's or Azure's
 * `scp` are arrays of strings. Both are read; anything else grants nothing.
 */
function claimValues(value: unknown): string[] {
  if (typeof value === "string") return value.split(" ").filter(Boolean);
  if (Array.isArray(value)) return value.filter((item): item is string => typeof item === "string");
  return [];
}

/** A reason a client can act on, without echoing anything from the token. */
function describeJoseError(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return "Token has expired";
  if (error instanceof joseErrors.JWTClaimValidationFailed)
    return `Token claim "${error.claim}" is not valid`;
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return "Token algorithm not accepted";
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return "Token signature is not valid";
  if (error instanceof AuthenticationError) return error.message;
  return "Token is not valid";
}

/** Extracts the token from `Bearer <jwt>`; anything else is no token. */
export function bearerToken(header: string | null | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

export interface SignOptions {
  readonly secret: string;
  readonly userId: string;
  readonly admin?: boolean;
  /** A read-only operator: READ_SCOPE in the admin claim instead of its admin value. */
  readonly readOnly?: boolean;
  readonly expiresIn?: string | number;
  readonly issuer?: string | undefined;
  readonly audience?: string | undefined;
  /** Where an admin token carries its grant (JWT_ADMIN_CLAIM / JWT_ADMIN_VALUE); `scope` by default. */
  readonly adminClaim?: string | undefined;
  readonly adminValue?: string | undefined;
}

/** Signs an HS256 token, for the developer `npm run token` script and for tests. */
export function signDevToken(options: SignOptions): Promise<string> {
  const claim = options.adminClaim ?? "scope";
  const value = options.adminValue ?? ADMIN_SCOPE;
  const granted = options.admin ? value : options.readOnly ? READ_SCOPE : undefined;
  const grant = granted ? { [claim]: claim === "scope" ? granted : [granted] } : {};
  const jwt = new SignJWT({ scope: "", ...grant })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(options.userId)
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? "24h");
  if (options.issuer) jwt.setIssuer(options.issuer);
  if (options.audience) jwt.setAudience(options.audience);
  return jwt.sign(new TextEncoder().encode(options.secret));
}
