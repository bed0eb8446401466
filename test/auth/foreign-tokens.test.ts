import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";
import { newUserId, startTestApp, type TestApp, useStarted } from "../helpers/app.js";
import { driverName, useTestDatabase } from "../helpers/database.js";
import { IDP_AUDIENCE, IDP_ISSUER, type LocalIdp, startLocalIdp } from "../helpers/identity-provider.js";
import { collectOutput, projectRoot } from "../helpers/process.js";

const GRANT = `mutation Grant($input: GrantTokensInput!) {
  grantTokens(input: $input) { success newBalance }
}`;
const BALANCE = "{ balance { balance } }";

const idp: LocalIdp = useStarted("the identity provider", startLocalIdp);
const database = useTestDatabase();
const identity = () => ({ JWKS_URL: idp.url, JWT_ISSUER: IDP_ISSUER, JWT_AUDIENCE: IDP_AUDIENCE });
const app = useStarted("the app", () => startTestApp(identity(), database.current()));
const auth0Rbac = useStarted("the app reading Auth0 RBAC permissions", () =>
  startTestApp({ ...identity(), JWT_ADMIN_CLAIM: "permissions" }, database.current()),
);
const okta = useStarted("the app reading Okta's scp with its own value", () =>
  startTestApp(
    { ...identity(), JWT_ADMIN_CLAIM: "scp", JWT_ADMIN_VALUE: "ledger.admin" },
    database.current(),
  ),
);

/** Grants 1,000 tokens to a fresh user with `token`; answers the error code (or OK) and the user's balance. */
async function grantWith(t: TestApp, token: string): Promise<{ code: string; balance: number }> {
  const userId = newUserId("grantee");
  const result = await t.gql(GRANT, { input: { userId, amount: 1000, reason: "foreign admin" } }, token);
  const balance = await t.gql<{ balance: { balance: number } }>(BALANCE, {}, await idp.sign({ sub: userId }));
  return {
    code: result.errors?.[0]?.extensions?.code ?? "OK",
    balance: balance.data?.balance.balance ?? Number.NaN,
  };
}

describe(`tokens from another tenant of the key set, on ${driverName}`, () => {
  it("a token from a foreign issuer or for a foreign audience is refused, even carrying the admin scope", async () => {
    const admin = { scope: "tokens:admin" };
    const foreignIssuer = await idp.sign({
      iss: "https://securetoken.google.com/other-project",
      claims: admin,
    });
    const foreignAudience = await idp.sign({ aud: "other-project", claims: admin });
    expect(await grantWith(app, foreignIssuer)).toEqual({ code: "UNAUTHENTICATED", balance: 0 });
    expect(await grantWith(app, foreignAudience)).toEqual({ code: "UNAUTHENTICATED", balance: 0 });
    // The same claims from this tenant are an admin, with either key type.
    expect(await grantWith(app, await idp.sign({ claims: admin }))).toEqual({ code: "OK", balance: 1000 });
    const es256 = await idp.sign({ kid: "ec-1", claims: admin });
    expect(await grantWith(app, es256)).toEqual({ code: "OK", balance: 1000 });
  });

  it("JWT_ADMIN_CLAIM=permissions reads Auth0 RBAC's array, and a requested scope no longer makes an admin", async () => {
    const rbac = await idp.sign({ claims: { permissions: ["read:balance", "tokens:admin"] } });
    expect(await grantWith(auth0Rbac, rbac)).toEqual({ code: "OK", balance: 1000 });
    // Without RBAC, Auth0 puts whatever scope the app asked for in `scope`: that must not count.
    const requested = await idp.sign({ claims: { scope: "openid tokens:admin", permissions: [] } });
    expect(await grantWith(auth0Rbac, requested)).toEqual({ code: "FORBIDDEN", balance: 0 });
  });

  it("JWT_ADMIN_CLAIM=scp with JWT_ADMIN_VALUE reads Okta's and Azure's array; a string claim still splits", async () => {
    expect(await grantWith(okta, await idp.sign({ claims: { scp: ["ledger.admin"] } }))).toEqual({
      code: "OK",
      balance: 1000,
    });
    expect(await grantWith(okta, await idp.sign({ claims: { scp: "openid ledger.admin" } }))).toEqual({
      code: "OK",
      balance: 1000,
    });
    expect(await grantWith(okta, await idp.sign({ claims: { scp: ["tokens:admin"] } }))).toEqual({
      code: "FORBIDDEN",
      balance: 0,
    });
  });
});

describe("production with a key set but no issuer or audience", () => {
  const production = {
    NODE_ENV: "production",
    REVENUECAT_WEBHOOK_SECRET: "w".repeat(24),
    PRODUCT_TOKEN_MAP: '{"coins_100":100}',
    DATABASE_URL: "postgres://db.internal/ledger",
  };

  it("refuses to load, naming what is missing and the risk", () => {
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig({ ...production, ...env });
        return "";
      } catch (error) {
        if (error instanceof ConfigError) return error.problems.join("\n");
        throw error;
      }
    };
    const jwks = "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com";
    expect(problems({ JWKS_URL: jwks })).toMatch(/JWT_ISSUER and JWT_AUDIENCE: required with JWKS_URL/);
    expect(problems({ JWKS_URL: jwks, JWT_ISSUER: "https://securetoken.google.com/p" })).toMatch(
      /^JWT_AUDIENCE: required with JWKS_URL when NODE_ENV=production; .*any other tenant/,
    );
    expect(problems({ JWKS_URL: jwks, JWT_AUDIENCE: "p" })).toMatch(/^JWT_ISSUER: required/);
    expect(
      problems({ JWKS_URL: jwks, JWT_ISSUER: "https://securetoken.google.com/p", JWT_AUDIENCE: "p" }),
    ).toBe("");
    // A JWT_SECRET is this service's own: nobody else signs with it.
    expect(problems({ JWT_SECRET: "s".repeat(32) })).toBe("");
  });

  it("the server process exits 1 with that message instead of starting", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "foreign-tokens-"));
    // Before the check, this process started and served: it is killed after 30 s so the test fails.
    const { code, output } = await exitOf({ ...production, JWKS_URL: idp.url, DATA_DIR: dataDir });
    expect(code).toBe(1);
    expect(output).toMatch(/JWT_ISSUER and JWT_AUDIENCE: required with JWKS_URL when NODE_ENV=production/);
    expect(output).toMatch(/any Firebase project shares Google's key set/);
    expect(output).not.toMatch(/listening/);
  }, 60_000);
});

/** `node --import tsx src/main.ts` expected to refuse to start; killed after 30 s if it serves instead. */
async function exitOf(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: projectRoot,
    env: { ...process.env, HOST: "127.0.0.1", PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output = collectOutput(child);
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const [code] = (await once(child, "exit")) as [number | null];
  clearTimeout(timer);
  return { code, output: output() };
}
