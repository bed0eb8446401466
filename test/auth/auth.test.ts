import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, SignJWT, UnsecuredJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTokenVerifier } from "../../src/auth/jwt.js";
import { JWT_SECRET, newUserId, startTestApp, type TestApp } from "../helpers/app.js";
import { driverName } from "../helpers/database.js";

const secretKey = new TextEncoder().encode(JWT_SECRET);
const BALANCE = "{ balance { balance } }";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ JWT_ISSUER: "https://auth.example", JWT_AUDIENCE: "token-ledger" });
});
afterAll(() => t.close());

function hs256(claims: Record<string, unknown> = {}, alg = "HS256") {
  return new SignJWT({ scope: "", ...claims })
    .setProtectedHeader({ alg })
    .setSubject(newUserId())
    .setIssuer("https://auth.example")
    .setAudience("token-ledger")
    .setIssuedAt()
    .setExpirationTime("1h");
}

async function codeFor(token: string): Promise<string | undefined> {
  const result = await t.gql(BALANCE, {}, token);
  return result.errors?.[0]?.extensions?.code ?? (result.data ? "OK" : undefined);
}

async function restStatus(authorization: string): Promise<number> {
  const response = await fetch(`${t.url}/api/v1/tokens/balance`, { headers: { authorization } });
  return response.status;
}

describe(`authentication on ${driverName}`, () => {
  it("accepts a valid HS256 token with the right issuer and audience", async () => {
    expect(await codeFor(await hs256().sign(secretKey))).toBe("OK");
  });

  it.each([
    [
      "unsigned (alg none)",
      async () => new UnsecuredJWT({ sub: "attacker" }).setExpirationTime("1h").encode(),
    ],
    [
      "expired",
      async () =>
        hs256()
          .setExpirationTime(Math.floor(Date.now() / 1000) - 120)
          .sign(secretKey),
    ],
    [
      "not yet valid",
      async () =>
        hs256()
          .setNotBefore(Math.floor(Date.now() / 1000) + 600)
          .sign(secretKey),
    ],
    ["signed with another secret", async () => hs256().sign(new TextEncoder().encode("x".repeat(48)))],
    ["wrong issuer", async () => hs256().setIssuer("https://evil.example").sign(secretKey)],
    ["wrong audience", async () => hs256().setAudience("other-api").sign(secretKey)],
    [
      "without a subject",
      async () =>
        new SignJWT({})
          .setProtectedHeader({ alg: "HS256" })
          .setIssuer("https://auth.example")
          .setAudience("token-ledger")
          .setExpirationTime("1h")
          .sign(secretKey),
    ],
    [
      "without an expiry",
      async () =>
        new SignJWT({})
          .setProtectedHeader({ alg: "HS256" })
          .setSubject("u")
          .setIssuer("https://auth.example")
          .setAudience("token-ledger")
          .sign(secretKey),
    ],
    [
      "with a tampered payload",
      async () => {
        const [header, , signature] = (await hs256().sign(secretKey)).split(".");
        const payload = Buffer.from(
          JSON.stringify({
            sub: "victim",
            exp: 9999999999,
            iss: "https://auth.example",
            aud: "token-ledger",
          }),
        ).toString("base64url");
        return `${header}.${payload}.${signature}`;
      },
    ],
    ["HS512 instead of the pinned HS256", async () => hs256({}, "HS512").sign(secretKey)],
    ["garbage", async () => "not.a.jwt"],
  ])("refuses a token that is %s: UNAUTHENTICATED over GraphQL, 401 over REST", async (_name, make) => {
    const token = await make();
    expect(await codeFor(token)).toBe("UNAUTHENTICATED");
    expect(await restStatus(`Bearer ${token}`)).toBe(401);
  });

  it("refuses an Authorization header that is not a Bearer token", async () => {
    expect(await restStatus(`Basic ${Buffer.from("a:b").toString("base64")}`)).toBe(401);
    const response = await fetch(`${t.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Token abc" },
      body: JSON.stringify({ query: BALANCE }),
    });
    const body = (await response.json()) as { errors: { message: string; extensions: { code: string } }[] };
    expect(body.errors[0]?.extensions.code).toBe("UNAUTHENTICATED");
    expect(body.errors[0]?.message).toMatch(/Bearer/);
  });

  it("the user id is the token's sub, never an argument", async () => {
    const query = '{ balance(userId: "someone-else") { balance } }';
    const result = await t.gql(query, {}, await hs256().sign(secretKey));
    expect(result.errors?.[0]?.message).toMatch(/Unknown argument/);
  });

  it("reads tokens:admin from the space-separated scope claim", async () => {
    const grant = `mutation { grantTokens(input: { userId: "${newUserId()}", amount: 1, reason: "x" }) { success } }`;
    const admin = await hs256({ scope: "profile tokens:admin email" }).sign(secretKey);
    const lookalike = await hs256({ scope: "tokens:administrator" }).sign(secretKey);
    expect((await t.gql(grant, {}, admin)).data).toEqual({ grantTokens: { success: true } });
    expect((await t.gql(grant, {}, lookalike)).errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
  });
});

describe("JWKS (RS256, ES256 and EdDSA from an identity provider)", () => {
  let jwksServer: Server;
  let jwksUrl: string;
  let rsa: Awaited<ReturnType<typeof generateKeyPair>>;
  let ec: Awaited<ReturnType<typeof generateKeyPair>>;
  let ed: Awaited<ReturnType<typeof generateKeyPair>>;

  beforeAll(async () => {
    rsa = await generateKeyPair("RS256");
    ec = await generateKeyPair("ES256");
    // Better Auth's JWT plugin signs with Ed25519 (EdDSA) by default.
    ed = await generateKeyPair("EdDSA", { crv: "Ed25519" });
    const keys = [
      { ...(await exportJWK(ed.publicKey)), kid: "ed-1", alg: "EdDSA", use: "sig" },
      { ...(await exportJWK(rsa.publicKey)), kid: "rsa-1", alg: "RS256", use: "sig" },
      { ...(await exportJWK(ec.publicKey)), kid: "ec-1", alg: "ES256", use: "sig" },
    ];
    jwksServer = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ keys }));
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, "127.0.0.1", resolve));
    jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/.well-known/jwks.json`;
  });
  afterAll(() => new Promise<void>((resolve) => jwksServer.close(() => resolve())));

  it("verifies RS256, ES256 and EdDSA tokens against the key set and refuses HS256 without a secret", async () => {
    const verify = createTokenVerifier({
      secret: undefined,
      jwksUrl,
      issuer: undefined,
      audience: undefined,
    });
    const rs = await new SignJWT({ scope: "tokens:admin" })
      .setProtectedHeader({ alg: "RS256", kid: "rsa-1" })
      .setSubject("idp-user")
      .setExpirationTime("1h")
      .sign(rsa.privateKey);
    expect(await verify(rs)).toMatchObject({ userId: "idp-user", isAdmin: true });
    const es = await new SignJWT({})
      .setProtectedHeader({ alg: "ES256", kid: "ec-1" })
      .setSubject("idp-user-2")
      .setExpirationTime("1h")
      .sign(ec.privateKey);
    expect(await verify(es)).toMatchObject({ userId: "idp-user-2", isAdmin: false });
    const eddsa = await new SignJWT({})
      .setProtectedHeader({ alg: "EdDSA", kid: "ed-1" })
      .setSubject("better-auth-user")
      .setExpirationTime("1h")
      .sign(ed.privateKey);
    expect(await verify(eddsa)).toMatchObject({ userId: "better-auth-user" });
    const hs = await hs256().sign(secretKey);
    await expect(verify(hs)).rejects.toThrow(/algorithm/);
    const otherKey = await generateKeyPair("RS256");
    const forged = await new SignJWT({})
      .setProtectedHeader({ alg: "RS256", kid: "rsa-1" })
      .setSubject("idp-user")
      .setExpirationTime("1h")
      .sign(otherKey.privateKey);
    await expect(verify(forged)).rejects.toThrow(/signature/);
  });
});
