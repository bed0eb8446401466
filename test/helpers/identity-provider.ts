import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";

export const IDP_ISSUER = "https://idp.example/";
export const IDP_AUDIENCE = "token-ledger-api";

/**
 * How the key set URL answers: the keys, a 503, a body that is not JSON, JSON that is not a key set,
 * a reset connection, or never.
 */
export type KeySetMode = "ok" | "error" | "invalid" | "wrong-shape" | "reset" | "hang";

export interface TokenOptions {
  readonly kid?: string;
  readonly sub?: string;
  readonly iss?: string;
  readonly aud?: string;
  readonly claims?: Record<string, unknown>;
  readonly expiresIn?: string;
}

/**
 * A local identity provider as Auth0, Firebase or Supabase run one: an RS256 and an ES256 key (and a
 * second RS256 key to rotate to) made with jose, a JWKS URL serving the published ones, and tokens
 * signed by any of them. The test decides what the URL answers.
 */
export interface LocalIdp {
  readonly url: string;
  /** Changes what the key set URL answers from the next request on. */
  answer(mode: KeySetMode): void;
  /** Lists only these kids in the key set from the next request on (a rotation). */
  publish(kids: readonly string[]): void;
  /** Requests the key set URL has had. */
  readonly requests: () => number;
  sign(options?: TokenOptions): Promise<string>;
  close(): Promise<void>;
}

const KEYS = [
  { kid: "rsa-1", alg: "RS256" },
  { kid: "ec-1", alg: "ES256" },
  { kid: "rsa-2", alg: "RS256" },
] as const;

export async function startLocalIdp(): Promise<LocalIdp> {
  const pairs = new Map<string, { alg: string; privateKey: CryptoKey; jwk: JWK }>();
  for (const { kid, alg } of KEYS) {
    const { privateKey, publicKey } = await generateKeyPair(alg);
    pairs.set(kid, { alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: "sig" } });
  }
  let requests = 0;
  let mode: KeySetMode = "ok";
  let published: readonly string[] = ["rsa-1", "ec-1"];
  const hanging = new Set<import("node:http").ServerResponse>();
  const idp: LocalIdp = {
    url: "",
    answer: (next) => {
      mode = next;
    },
    publish: (kids) => {
      published = kids;
    },
    requests: () => requests,
    async sign(options = {}) {
      const kid = options.kid ?? "rsa-1";
      const pair = pairs.get(kid);
      if (!pair) throw new Error(`no key ${kid}`);
      return new SignJWT({ ...options.claims })
        .setProtectedHeader({ alg: pair.alg, kid, typ: "JWT" })
        .setSubject(options.sub ?? `idp-user-${randomUUID()}`)
        .setIssuer(options.iss ?? IDP_ISSUER)
        .setAudience(options.aud ?? IDP_AUDIENCE)
        .setIssuedAt()
        .setExpirationTime(options.expiresIn ?? "1h")
        .sign(pair.privateKey);
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of hanging) res.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server = createServer((req, res) => {
    requests += 1;
    if (mode === "reset") return req.socket.destroy();
    if (mode === "hang") return void hanging.add(res);
    if (mode === "error") return void res.writeHead(503).end("upstream unavailable");
    res.writeHead(200, { "content-type": "application/json" });
    if (mode === "invalid") return void res.end("<html>maintenance</html>");
    if (mode === "wrong-shape") return void res.end(JSON.stringify({ keys: "rotating" }));
    const keys = published.map((kid) => pairs.get(kid)?.jwk);
    res.end(JSON.stringify({ keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  Object.assign(idp, { url: `http://127.0.0.1:${port}/.well-known/jwks.json` });
  return idp;
}
