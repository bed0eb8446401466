import { describe, expect, it } from "vitest";
import { createTokenClient } from "../../src/client/index.js";
import { countingFetch, until } from "./helpers/clients.js";

/**
 * What only shows outside a browser page: React Native and Node have no `location`, so a relative
 * URL cannot be resolved there, and no window events (the client attaches none).
 */
describe("@token-ledger/client without a page (React Native, Node)", () => {
  it("a relative url is a clear error, not a request to nowhere or a reconnect loop", async () => {
    const counted = countingFetch();
    const client = createTokenClient({ url: "/graphql", getToken: () => "token", fetch: counted.fetch });
    await expect(client.getBalance()).rejects.toMatchObject({
      code: "UNEXPECTED",
      retryable: false,
      message: expect.stringContaining("relative"),
    });
    const stop = client.subscribe(() => undefined);
    const state = await until(client, (snapshot) => snapshot.error !== null && !snapshot.loading, 10_000);
    expect(state.error?.message).toContain('The url "/graphql" is relative and there is no page');
    expect(counted.operations).toEqual([]);
    stop();
    await client.dispose();
  });
});
