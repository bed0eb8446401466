import { describe, expect, it } from "vitest";
import { createTokenVerifier } from "../../src/auth/jwt.js";
import {
  AuthUnavailableError,
  createRemoteKeySet,
  type KeySetFetchError,
  type KeySetOptions,
} from "../../src/auth/key-set.js";
import { useStarted } from "../helpers/app.js";
import { type KeySetMode, type LocalIdp, startLocalIdp } from "../helpers/identity-provider.js";

const idp: LocalIdp = useStarted("the identity provider", startLocalIdp);

/** A verifier on its own key set, with every fetch failure recorded. */
function verifierOf(options: Partial<KeySetOptions> = {}) {
  const failures: KeySetFetchError[] = [];
  const keySet = createRemoteKeySet({
    url: idp.url,
    retryMs: 0,
    onFailure: (error) => failures.push(error),
    ...options,
  });
  const settings = { secret: undefined, jwksUrl: idp.url, issuer: undefined, audience: undefined };
  return { verify: createTokenVerifier(settings, keySet), keySet, failures };
}

describe("the key set client", () => {
  it.each<[KeySetMode, string, RegExp]>([
    ["error", "http_status", /^HTTP 503/],
    ["invalid", "invalid", /did not answer JSON/],
    ["wrong-shape", "invalid", /did not answer a JSON Web Key Set/],
    ["reset", "network", /^fetch failed: /],
    ["hang", "timeout", /no answer within 300 ms/],
  ])("a key set answering %s is an outage (%s), never a bad token", async (mode, reason, message) => {
    idp.answer(mode);
    try {
      // A short timeout only where it is what is tested: a loaded machine is slow to answer at all.
      const { verify, failures, keySet } = verifierOf({ timeoutMs: mode === "hang" ? 300 : 5_000 });
      const error = await verify(await idp.sign()).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(AuthUnavailableError);
      expect(failures.map((failure) => failure.reason)).toEqual([reason]);
      expect(failures[0]?.message).toMatch(message);
      expect(keySet.status()).toMatchObject({ reachable: false, keys: 0, failingSince: expect.any(String) });
    } finally {
      idp.answer("ok");
    }
  });

  it("fetches once for many tokens, and at most once per cooldown for an unknown kid", async () => {
    const before = idp.requests();
    const { verify } = verifierOf({ cooldownMs: 60_000 });
    await Promise.all(Array.from({ length: 20 }, async () => verify(await idp.sign())));
    for (let i = 0; i < 5; i += 1) {
      await expect(verify(await idp.sign({ kid: "rsa-2" }))).rejects.toThrow(/not valid|key/i);
    }
    expect(idp.requests() - before).toBe(1);
  });
});
