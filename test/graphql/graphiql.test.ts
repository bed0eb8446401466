import { describe, expect, it } from "vitest";
import { useTestApp } from "../helpers/app.js";
import { chromiumRunnable, withChromium } from "../helpers/chromium.js";
import { driverName } from "../helpers/database.js";
import { fundUser } from "../helpers/ledger.js";

const t = useTestApp();

const page = (headers: Record<string, string>) =>
  fetch(`${t.url}/graphql`, { headers: { accept: "text/html", ...headers } });

describe(`GraphiQL on ${driverName}`, () => {
  it("is served compressed, with an ETag, and from the package itself (no CDN)", async () => {
    const plain = await page({ "accept-encoding": "identity" });
    const html = await plain.text();
    expect(plain.status).toBe(200);
    expect(html).toContain("<title>token-ledger</title>");
    expect(html).not.toMatch(/unpkg\.com|jsdelivr|cdnjs|esm\.sh/);
    // Node's fetch decompresses: the size on the wire is content-length.
    for (const encoding of ["br", "gzip"]) {
      const compressed = await page({ "accept-encoding": encoding });
      expect(compressed.headers.get("content-encoding")).toBe(encoding);
      expect(Number(compressed.headers.get("content-length"))).toBeLessThan(html.length / 3);
      expect(await compressed.text()).toBe(html);
    }
    const etag = plain.headers.get("etag") ?? "";
    expect((await page({ "if-none-match": etag })).status).toBe(304);
  });

  (chromiumRunnable ? it : it.skip)(
    "a subscription run from GraphiQL carries the Headers tab's token and shows live changes",
    async () => {
      const { userId, token } = await fundUser(t, 500);
      const admin = await t.token("ops", { admin: true });
      await withChromium(async (browser) => {
        const tab = await browser.newPage();
        // What a person types into the Headers tab, which GraphiQL keeps in localStorage.
        const headers = JSON.stringify({ Authorization: `Bearer ${token}` });
        await tab.addInitScript((text) => localStorage.setItem("graphiql:headers", text), headers);
        const query = "subscription { balanceChanged { balance delta } }";
        await tab.goto(`${t.url}/graphql?query=${encodeURIComponent(query)}`);
        await tab.click(".graphiql-execute-button", { timeout: 30_000 });
        const result = tab.locator(".graphiql-response");
        await expect.poll(() => result.textContent(), { timeout: 30_000 }).toMatch(/"balance":\s+500\b/);
        const grant = `mutation { grantTokens(input: {userId: "${userId}", amount: 25, reason: "live"}) { success } }`;
        await t.gql(grant, {}, admin);
        await expect.poll(() => result.textContent(), { timeout: 30_000 }).toMatch(/"balance":\s+525\b/);
      });
    },
  );
});
