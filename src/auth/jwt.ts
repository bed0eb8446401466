import { createSecretKey } from "node:crypto";
import {
  createRemoteJWKSet,
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

export const ADMIN_SCOPE = "tokens:admin";

/** Who is calling: the token's subject is the user id the app also gives RevenueCat as app_user_id. */
export interface Viewer {
  readonly userId: string;
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

const CLOCK_TOLERANCE_SECONDS = 30;
/** Verified tokens remembered, so a client's every request does not pay for signature checks again. */
const VERIFIED_CACHE_SIZE = 50_000;

/**
 * Builds the one verifier that both HTTP and WebSocket use. Algorithms are pinned to what is
 * configured: HS256 with JWT_SECRET; RS256, ES256 and EdDSA (Better Auth's default) from the JWKS_URL
 * key set; "none" never verifies.
 */
export function createTokenVerifier(jwt: Config["jwt"]): VerifyToken {
  // A KeyObject lets jose use node:crypto directly instead of importing a WebCrypto key per call.
  const secret = jwt.secret ? createSecretKey(Buffer.from(jwt.secret)) : undefined;
  const remote = jwt.jwksUrl ? createRemoteJWKSet(new URL(jwt.jwksUrl)) : undefined;
  const algorithms = [...(secret ? ["HS256"] : []), ...(remote ? ["RS256", "ES256", "EdDSA"] : [])];
  if (algorithms.length === 0) throw new Error("No JWT_SECRET or JWKS_URL configured");

  const getKey: JWTVerifyGetKey = async (header, token) => {
    if (header.alg === "HS256" && secret) return secret;
    if (remote) return remote(header, token);
    throw new AuthenticationError("Token algorithm not accepted");
  };

  // The key is the whole token, signature included, so only the exact token that verified can hit;
  // an entry lives no longer than the token itself.
  const verified = new LRUCache<string, Viewer>({ max: VERIFIED_CACHE_SIZE, ttlAutopurge: false });

  return async (token) => {
    const cached = verified.get(token);
    if (cached) return cached;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, getKey, {
        algorithms,
        issuer: jwt.issuer,
        audience: jwt.audience,
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        requiredClaims: ["sub", "exp"],
      }));
    } catch (error) {
      throw new AuthenticationError(describeJoseError(error), error instanceof joseErrors.JWTExpired);
    }
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
    const scopes = new Set(typeof payload.scope === "string" ? payload.scope.split(" ").filter(Boolean) : []);
    const viewer: Viewer = { userId, scopes, isAdmin: scopes.has(ADMIN_SCOPE), expiresAt: payload.exp };
    const ttl = ((payload.exp ?? 0) + CLOCK_TOLERANCE_SECONDS) * 1000 - Date.now();
    // A token that is not yet valid (nbf) is refused above, so a cached one is valid until it expires.
    if (ttl > 0) verified.set(token, viewer, { ttl });
    return viewer;
  };
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
  readonly expiresIn?: string | number;
  readonly issuer?: string | undefined;
  readonly audience?: string | undefined;
}

/** Signs an HS256 token, for the developer `npm run token` script and for tests. */
export function signDevToken(options: SignOptions): Promise<string> {
  const jwt = new SignJWT({ scope: options.admin ? ADMIN_SCOPE : "" })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(options.userId)
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? "24h");
  if (options.issuer) jwt.setIssuer(options.issuer);
  if (options.audience) jwt.setAudience(options.audience);
  return jwt.sign(new TextEncoder().encode(options.secret));
}
