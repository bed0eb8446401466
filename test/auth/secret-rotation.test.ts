import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { jwtVerify, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";
import { newUserId, startTestApp, useStarted } from "../helpers/app.js";
import { driverName } from "../helpers/database.js";
import { projectRoot } from "../helpers/process.js";
import { deliver, fixture } from "../helpers/revenuecat.js";

const OLD_JWT = "old-jwt-secret-being-rotated-out-0123456789";
const NEW_JWT = "new-jwt-secret-taking-over-now-0123456789ab";
const OLD_WEBHOOK = "old-webhook-secret-0123";
const NEW_WEBHOOK = "new-webhook-secret-4567";
const OLD_METRICS = "old-metrics-token";
const NEW_METRICS = "new-metrics-token";

const app = useStarted("the app mid-rotation", () =>
  startTestApp({
    JWT_SECRET: NEW_JWT,
    JWT_SECRET_PREVIOUS: OLD_JWT,
    REVENUECAT_WEBHOOK_SECRET: NEW_WEBHOOK,
    REVENUECAT_WEBHOOK_SECRET_PREVIOUS: OLD_WEBHOOK,
    METRICS_TOKEN: NEW_METRICS,
    METRICS_TOKEN_PREVIOUS: OLD_METRICS,
  }),
);

function signedWith(secret: string): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(newUserId())
    .setExpirationTime("1h")
    .sign(new TextEncoder().encode(secret));
}

async function balanceStatus(token: string): Promise<number> {
  const response = await fetch(`${app.url}/api/v1/tokens/balance`, {
    headers: { authorization: `Bearer ${token}` },
  });
  return response.status;
}

async function metricsStatus(authorization: string | undefined): Promise<number> {
  const response = await fetch(`${app.url}/metrics`, { headers: authorization ? { authorization } : {} });
  await response.text();
  return response.status;
}

const delivery = () => fixture("NON_RENEWING_PURCHASE__rc-docs", { app_user_id: newUserId() });
const webhookStatus = async (authorization: string) =>
  (await deliver(app.url, delivery(), { authorization })).status;

describe(`rotating secrets with a previous value beside the current one, on ${driverName}`, () => {
  it("JWT_SECRET_PREVIOUS: tokens either secret signed verify; any other secret is refused", async () => {
    expect(await balanceStatus(await signedWith(NEW_JWT))).toBe(200);
    expect(await balanceStatus(await signedWith(OLD_JWT))).toBe(200);
    expect(await balanceStatus(await signedWith("a-third-secret-nobody-configured-012345"))).toBe(401);
  });

  it("REVENUECAT_WEBHOOK_SECRET_PREVIOUS: deliveries with either secret are taken, as the value or after Bearer", async () => {
    expect(await webhookStatus(`Bearer ${NEW_WEBHOOK}`)).toBe(200);
    expect(await webhookStatus(`Bearer ${OLD_WEBHOOK}`)).toBe(200);
    expect(await webhookStatus(OLD_WEBHOOK)).toBe(200);
    expect(await webhookStatus(NEW_WEBHOOK)).toBe(200);
    expect(await webhookStatus("Bearer some-other-secret-000")).toBe(401);
  });

  it("the webhook takes the Bearer scheme in any case, as the API does (RFC 9110)", async () => {
    expect(await webhookStatus(`bearer ${NEW_WEBHOOK}`)).toBe(200);
    expect(await webhookStatus(`BEARER ${OLD_WEBHOOK}`)).toBe(200);
    expect(await webhookStatus(`bearer ${NEW_WEBHOOK}x`)).toBe(401);
  });

  it("METRICS_TOKEN_PREVIOUS: /metrics takes either token, in any case of Bearer", async () => {
    expect(await metricsStatus(`Bearer ${NEW_METRICS}`)).toBe(200);
    expect(await metricsStatus(`Bearer ${OLD_METRICS}`)).toBe(200);
    expect(await metricsStatus(`bearer ${NEW_METRICS}`)).toBe(200);
    expect(await metricsStatus(`Bearer ${OLD_METRICS}-not`)).toBe(401);
    expect(await metricsStatus(undefined)).toBe(401);
  });

  it("npm run token signs with the current secret, never the previous one", async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["--import", "tsx", "src/scripts/dev-token.ts", "alice"],
      {
        cwd: projectRoot,
        env: {
          ...process.env,
          NODE_ENV: "test",
          JWT_SECRET: NEW_JWT,
          JWT_SECRET_PREVIOUS: OLD_JWT,
          REVENUECAT_WEBHOOK_SECRET: NEW_WEBHOOK,
        },
      },
    );
    const token = stdout.trim();
    await expect(jwtVerify(token, new TextEncoder().encode(NEW_JWT))).resolves.toBeTruthy();
    await expect(jwtVerify(token, new TextEncoder().encode(OLD_JWT))).rejects.toThrow(/signature/);
  });

  it("a previous value alone is refused: it belongs beside the current one", () => {
    const problems = (() => {
      try {
        loadConfig({ JWT_SECRET_PREVIOUS: OLD_JWT, METRICS_TOKEN_PREVIOUS: OLD_METRICS });
        return [];
      } catch (error) {
        if (error instanceof ConfigError) return error.problems;
        throw error;
      }
    })();
    expect(problems).toEqual([
      "JWT_SECRET_PREVIOUS: set only beside JWT_SECRET, while rotating it",
      "METRICS_TOKEN_PREVIOUS: set only beside METRICS_TOKEN, while rotating it",
    ]);
  });
});
