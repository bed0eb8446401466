import { describe, expect, it } from "vitest";
import WebSocket from "ws";
import { createTokenClient } from "../../src/client/index.js";
import { startTestApp, type TestApp, useStarted } from "../helpers/app.js";
import { driverName, useTestDatabase } from "../helpers/database.js";
import { IDP_AUDIENCE, IDP_ISSUER, type KeySetMode, startLocalIdp } from "../helpers/identity-provider.js";

const BALANCE = "{ balance { balance } }";
const FAILURE_LIMIT = 20;

const database = useTestDatabase();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** An identity provider in the given mode, and an app started against it (so with no keys cached if it fails). */
function useAppBehind(mode: KeySetMode, env: Record<string, string> = {}) {
  const idp = useStarted("the identity provider", async () => {
    const started = await startLocalIdp();
    started.answer(mode);
    return started;
  });
  const app = useStarted("the app", () =>
    startTestApp(
      {
        JWKS_URL: idp.url,
        JWT_ISSUER: IDP_ISSUER,
        JWT_AUDIENCE: IDP_AUDIENCE,
        RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: String(FAILURE_LIMIT),
        ...env,
      },
      database.current(),
    ),
  );
  return { idp, app };
}

async function rest(t: TestApp, token: string) {
  const response = await fetch(`${t.url}/api/v1/tokens/balance`, {
    headers: { authorization: `Bearer ${token}` },
  });
  const body = (await response.json()) as { error?: { code: string } };
  return { status: response.status, code: body.error?.code, retryAfter: response.headers.get("retry-after") };
}

async function graphql(t: TestApp, token: string) {
  const response = await fetch(`${t.url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: BALANCE }),
  });
  const body = (await response.json()) as { errors?: { extensions?: { code?: string } }[] };
  return { status: response.status, code: body.errors?.[0]?.extensions?.code ?? "OK" };
}

/** The close code a graphql-ws connection_init with this token gets (or "open"). */
function wsCloseCode(t: TestApp, token: string): Promise<number | "open"> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${t.url.replace("http", "ws")}/graphql`, "graphql-transport-ws");
    socket.on("open", () =>
      socket.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${token}` } })),
    );
    socket.on("message", (data) => {
      if (JSON.parse(String(data)).type === "connection_ack") {
        socket.close();
        resolve("open");
      }
    });
    socket.on("close", (code) => resolve(code));
    socket.on("error", reject);
  });
}

async function metricValue(t: TestApp, name: string): Promise<number> {
  const text = await (await fetch(`${t.url}/metrics`)).text();
  const line = text.split("\n").find((candidate) => candidate.startsWith(name));
  return line ? Number(line.split(" ").pop()) : Number.NaN;
}

describe(`the key set cannot be fetched and no key is cached, on ${driverName}`, () => {
  const { idp, app } = useAppBehind("error");

  it("a valid token gets a retryable 503 AUTH_UNAVAILABLE everywhere, is never counted as a failed authentication, and works once the key set is back", async () => {
    const token = await idp.sign();
    const answers = [];
    for (let i = 0; i < FAILURE_LIMIT + 5; i += 1) answers.push(await rest(app, token));
    expect(new Set(answers.map((answer) => `${answer.status} ${answer.code}`))).toEqual(
      new Set(["503 AUTH_UNAVAILABLE"]),
    );
    expect(Number(answers[0]?.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(await graphql(app, token)).toEqual({ status: 503, code: "AUTH_UNAVAILABLE" });
    expect(await wsCloseCode(app, token)).toBe(4503);

    const ready = await fetch(`${app.url}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({
      status: "degraded",
      degraded: {
        identityProviderKeys: {
          reachable: false,
          keys: 0,
          lastError: expect.stringMatching(/^http_status: HTTP 503/),
        },
      },
    });
    expect(
      await metricValue(app, 'token_jwks_fetch_failures_total{reason="http_status"}'),
    ).toBeGreaterThanOrEqual(1);
    expect(await metricValue(app, "token_jwks_reachable")).toBe(0);
    const warnings = app.logs.lines.filter((line) => line.level === 40 && line.reason === "http_status");
    expect(warnings.length).toBeGreaterThanOrEqual(1);
    expect(warnings[0]).toMatchObject({ jwksUrl: idp.url, cause: "HTTP 503 from the key set URL" });
    // A fetch is retried every 5 s at most, not once per request, and so is the warning.
    expect(idp.requests()).toBeLessThanOrEqual(3);
    expect(app.logs.raw.join("\n")).not.toContain(token.split(".")[2]);

    idp.answer("ok");
    await sleep(5_100);
    // Not blocked: the 25 refusals above were the key set's fault, not the caller's.
    expect(await rest(app, token)).toMatchObject({ status: 200 });
    expect(await (await fetch(`${app.url}/ready`)).json()).toEqual({ status: "ready" });
    expect(await metricValue(app, "token_jwks_reachable")).toBe(1);
    expect(app.logs.messages()).toContain("identity provider key set reachable again");
  }, 30_000);

  it("a forged token is still refused (401) once keys are there", async () => {
    const forged = `${(await idp.sign()).split(".").slice(0, 2).join(".")}.${"A".repeat(342)}`;
    expect(await rest(app, forged)).toMatchObject({ status: 401, code: "UNAUTHENTICATED" });
  });
});

describe(`@token-ledger/client through a key-set outage, on ${driverName}`, () => {
  const { idp, app } = useAppBehind("reset");

  it("the live connection is closed 4503 (not fatal) and reconnects by itself with the same token", async () => {
    const token = await idp.sign();
    const client = createTokenClient({ url: `${app.url}/graphql`, getToken: () => token, WebSocket });
    const codes: (string | undefined)[] = [];
    const stop = client.subscribe(() => codes.push(client.getSnapshot().error?.code));
    try {
      await sleep(1_500);
      expect(client.getSnapshot().live).toBe(false);
      expect(codes).not.toContain("UNAUTHENTICATED");
      idp.answer("ok");
      const deadline = Date.now() + 25_000;
      while (!client.getSnapshot().live && Date.now() < deadline) await sleep(100);
      expect(client.getSnapshot()).toMatchObject({ live: true, balance: 0 });
      expect(
        app.logs.lines.some(
          (line) => line.reason === "network" && String(line.cause).startsWith("fetch failed"),
        ),
      ).toBe(true);
    } finally {
      stop();
      await client.dispose();
    }
  }, 40_000);
});

describe(`cached keys through an outage, on ${driverName}`, () => {
  const { idp, app } = useAppBehind("ok", { JWKS_MAX_AGE_SECONDS: "1" });

  it("keys fetched before the outage keep verifying tokens the cache has never seen, past their maximum age", async () => {
    expect(await rest(app, await idp.sign())).toMatchObject({ status: 200 });
    idp.answer("invalid");
    await sleep(1_100);
    for (const kid of ["rsa-1", "ec-1"]) {
      expect(await rest(app, await idp.sign({ kid }))).toMatchObject({ status: 200 });
    }
    expect(await (await fetch(`${app.url}/ready`)).json()).toMatchObject({
      status: "degraded",
      degraded: { identityProviderKeys: { reachable: false, keys: 2 } },
    });
    expect(app.logs.lines.some((line) => line.level === 40 && line.reason === "invalid")).toBe(true);
    // A key the cache does not have cannot be checked now: "try again", not "sign in again".
    expect(await rest(app, await idp.sign({ kid: "rsa-2" }))).toMatchObject({
      status: 503,
      code: "AUTH_UNAVAILABLE",
    });
  });
});

describe(`a key removed from the key set, on ${driverName}`, () => {
  const { idp, app } = useAppBehind("ok", { JWKS_MAX_AGE_SECONDS: "1" });

  it("stops verifying once the key set no longer lists it, even for a token already verified", async () => {
    const seen = await idp.sign({ kid: "rsa-1" });
    expect(await rest(app, seen)).toMatchObject({ status: 200 });
    expect(await rest(app, seen)).toMatchObject({ status: 200 });
    // The provider rotates: rsa-1 is withdrawn (say it leaked), rsa-2 signs from now on.
    idp.publish(["rsa-2", "ec-1"]);
    await sleep(1_100);
    expect(await rest(app, seen)).toMatchObject({ status: 401, code: "UNAUTHENTICATED" });
    expect(await rest(app, await idp.sign({ kid: "rsa-1" }))).toMatchObject({ status: 401 });
    expect(await rest(app, await idp.sign({ kid: "rsa-2" }))).toMatchObject({ status: 200 });
    expect(await rest(app, await idp.sign({ kid: "ec-1" }))).toMatchObject({ status: 200 });
  });
});
