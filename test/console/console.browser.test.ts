import { execFile } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signDevToken } from "../../src/auth/jwt.js";
import { JWT_SECRET, newUserId, startTestApp, type TestApp, WEBHOOK_SECRET } from "../helpers/app.js";
import { chromiumRunnable, launchChromium } from "../helpers/chromium.js";
import { driverName, openTestDatabase, type TestDatabase } from "../helpers/database.js";
import { projectRoot } from "../helpers/process.js";
import { deliver, fixture } from "../helpers/revenuecat.js";

/** Where the test leaves a screenshot of each page (kept out of git: see .gitignore). */
export const SCREENSHOTS = join(projectRoot, "test-output", "console");

const run = promisify(execFile);
const MAP_BEFORE = { "2100_tokens": 2100 };
const MAP_AFTER = { ...MAP_BEFORE, console_pack_300: 300 };
const TIMEOUT = { timeout: 20_000 };

describe.skipIf(!chromiumRunnable)(`the operator console in Chromium, on ${driverName}`, () => {
  let db: TestDatabase;
  let t: TestApp;
  let close: () => Promise<void>;
  let page: Page;
  const admin = newUserId("support");
  const buyer = newUserId("buyer");
  const late = newUserId("late");
  const unmapped = fixture("NON_RENEWING_PURCHASE__rc-docs", {
    app_user_id: late,
    product_id: "console_pack_300",
  });
  const shot = (name: string) => page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });

  beforeAll(async () => {
    await mkdir(SCREENSHOTS, { recursive: true });
    db = await openTestDatabase();
    // The purchase arrives while the product is missing from the map; the server then restarts with it.
    const before = await startTestApp({ PRODUCT_TOKEN_MAP: JSON.stringify(MAP_BEFORE) }, db);
    expect((await deliver(before.url, unmapped)).body.outcome).toBe("unmapped");
    await before.close();
    t = await startTestApp({ PRODUCT_TOKEN_MAP: JSON.stringify(MAP_AFTER) }, db);
    const chromium = await launchChromium();
    close = chromium.close;
    page = await chromium.browser.newPage();
    await page.setViewportSize({ width: 1366, height: 860 });
  }, 60_000);

  afterAll(async () => {
    await close?.();
    await t?.close();
    await db?.close();
  });

  it("signs in from the URL `npm run token -- <id> --admin --console` prints", async () => {
    const env = { ...process.env, NODE_ENV: "test", JWT_SECRET, REVENUECAT_WEBHOOK_SECRET: WEBHOOK_SECRET };
    const args = [
      "--import",
      "tsx",
      "src/scripts/dev-token.ts",
      admin,
      "--admin",
      "--console",
      "--base",
      t.url,
    ];
    const { stdout } = await run(process.execPath, args, { cwd: projectRoot, env });
    const url = stdout.trim();
    expect(url).toMatch(new RegExp(`^${t.url}/console#token=ey`));
    await page.goto(url);
    await page.locator("header .who").getByText(`${admin} · admin`).waitFor(TIMEOUT);
    // The token left the address bar and sits in session storage; it never reached the server's log.
    expect(page.url()).toBe(`${t.url}/console#/users`);
    expect(JSON.stringify(t.logs.lines)).not.toContain(url.split("#token=")[1]);
    await shot("1-users");
  });

  it("finds a user and sees a purchase arrive live", async () => {
    await page.locator("#user-search").fill(buyer);
    await page.keyboard.press("Enter");
    await page.locator("#balance").getByText("0", { exact: true }).waitFor(TIMEOUT);
    await page.locator(".live").getByText("live").waitFor(TIMEOUT);
    const bought = fixture("NON_RENEWING_PURCHASE__rc-docs", { app_user_id: buyer });
    expect((await deliver(t.url, bought)).body.outcome).toBe("credited");
    await page.locator("#balance").getByText("2100", { exact: true }).waitFor(TIMEOUT);
    const row = page.locator('#ledger tr[data-kind="PURCHASE"]');
    await row
      .getByText(/Purchase of 2100_tokens on APP_STORE transaction \d+ credited 2100 tokens/)
      .waitFor(TIMEOUT);
    await page
      .locator(`#user-deliveries tr[data-event="${bought.event.id}"][data-outcome="credited"]`)
      .waitFor(TIMEOUT);

    // A refund after 1500 of the 2100 tokens were spent: 600 come back, 1500 are the shortfall.
    const userToken = await t.token(buyer);
    const spend = `mutation { spendTokens(input: { amount: 1500, description: "Sword", idempotencyKey: "sword-1" }) { success } }`;
    expect((await t.gql(spend, {}, userToken)).data).toEqual({ spendTokens: { success: true } });
    const refund = fixture("CANCELLATION__rc-docs-refund", {
      app_user_id: buyer,
      transaction_id: bought.event.transaction_id,
      store: bought.event.store,
    });
    expect((await deliver(t.url, refund)).body.outcome).toBe("refunded");
    const refundRow = page.locator('#ledger tr[data-kind="REFUND"]');
    await refundRow
      .getByText(
        "the purchase gave 2100, 600 taken back; 1500 were already spent and could not be taken back",
      )
      .waitFor(TIMEOUT);
    await page.locator("#balance").getByText("0", { exact: true }).waitFor(TIMEOUT);
    // The raw body on demand.
    const refundDelivery = page.locator(`#user-deliveries tr[data-event="${refund.event.id}"]`);
    await refundDelivery.getByRole("button", { name: "Body" }).click();
    await refundDelivery.locator("pre").getByText(`"id": "${refund.event.id}"`).waitFor(TIMEOUT);
    await shot("2-user-purchase-refund");
  }, 60_000);

  it("reprocesses an unmapped delivery after the map changed, with confirmation", async () => {
    await page.getByRole("link", { name: "Deliveries" }).click();
    const row = page.locator(`#deliveries tr[data-event="${unmapped.event.id}"][data-outcome="unmapped"]`);
    await row.waitFor(TIMEOUT);
    await shot("3-deliveries-unmapped");
    const dialogs: string[] = [];
    page.once("dialog", (dialog) => {
      dialogs.push(dialog.message());
      void dialog.accept();
    });
    await row.getByRole("button", { name: "Reprocess" }).click();
    await page.getByText(`Reprocessed ${unmapped.event.id}: credited`).waitFor(TIMEOUT);
    expect(dialogs[0]).toContain("console_pack_300");
    // It left the "needs attention" list, and the user has the tokens.
    await row.waitFor({ state: "detached", ...TIMEOUT });
    const token = await t.token(admin, { admin: true });
    const read = await t.gql<{ userBalance: { balance: number } }>(
      "query($u: ID!) { userBalance(userId: $u) { balance } }",
      { u: late },
      token,
    );
    expect(read.data?.userBalance.balance).toBe(300);
    await page.locator("#filter").selectOption("credited");
    await page
      .locator(`#deliveries tr[data-event="${unmapped.event.id}"][data-outcome="credited"]`)
      .waitFor(TIMEOUT);
  }, 30_000);

  it("makes a grant with a reason and shows it in the ledger with its author", async () => {
    await page.getByRole("link", { name: "Users" }).click();
    await page.locator("#user-search").fill(buyer);
    await page.keyboard.press("Enter");
    await page.locator("#balance").getByText("0", { exact: true }).waitFor(TIMEOUT);
    await page.getByLabel("Tokens").fill("250");
    await page.getByLabel(/^Reason/).fill("Goodwill for ticket 4711");
    await page.getByLabel(/^Reason/).press("Enter");
    const row = page.locator('#ledger tr[data-kind="GRANT"]');
    await row.getByText(`Grant of 250 tokens by ${admin}: Goodwill for ticket 4711`).waitFor(TIMEOUT);
    await expect(row.locator("td").last().textContent()).resolves.toBe(admin);
    await page.locator("#balance").getByText("250", { exact: true }).waitFor(TIMEOUT);
    await shot("4-user-grant");
  }, 30_000);

  it("shows the health numbers of the last hour", async () => {
    await page.getByRole("link", { name: "Health" }).click();
    await page.locator(".chart").nth(3).waitFor(TIMEOUT);
    await page.locator('.chart[aria-label="Purchase success rate"] .now').getByText("%").waitFor(TIMEOUT);
    await shot("5-health");
  });

  it("refuses a token without an operator scope, and shows a tokens:read one read-only", async () => {
    const other = await page.context().newPage();
    await other.setViewportSize({ width: 1366, height: 600 });
    await other.goto(`${t.url}/console#token=${await t.token(buyer)}`);
    await other
      .getByRole("alert")
      .getByText(/Refused: This operation needs/)
      .waitFor(TIMEOUT);
    await other.screenshot({ path: join(SCREENSHOTS, "6-refused.png") });
    const readOnly = await signDevToken({
      secret: JWT_SECRET,
      userId: "auditor",
      readOnly: true,
      expiresIn: "10m",
    });
    await other.goto(`${t.url}/console#token=${readOnly}`);
    await other.locator("header .who").getByText("auditor · read-only").waitFor(TIMEOUT);
    await other.goto(`${t.url}/console#/user/${encodeURIComponent(buyer)}`);
    await other.locator('#ledger tr[data-kind="GRANT"]').waitFor(TIMEOUT);
    expect(await other.getByRole("form", { name: "Grant or adjust" }).count()).toBe(0);
    await other.close();
  }, 30_000);
});
