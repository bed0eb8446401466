import { existsSync } from "node:fs";
import { copyFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { build } from "esbuild";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type {
  BalanceReading,
  PurchaseCreditResult,
  SpendResult,
  TransactionsPage,
} from "../../src/client/index.js";
import { CHROMIUM, chromiumRunnable, launchChromium } from "../helpers/chromium.js";
import { driverName } from "../helpers/database.js";
import { projectRoot } from "../helpers/process.js";
import { sleep } from "./helpers/clients.js";
import { installBuiltClient } from "./helpers/installed-package.js";
import { useLedgerServer } from "./helpers/ledger-server.js";
import { type PageServer, servePage } from "./helpers/page-server.js";

/** What test/client/browser/page.ts puts on `window.ledger` for the test to drive. */
interface PageLedger {
  logs: { at: number; line: string }[];
  waits: number;
  balanceWithDetachedFetch(): Promise<BalanceReading>;
  spend(amount: number): Promise<SpendResult>;
  history(first: number, after: string | null): Promise<TransactionsPage>;
  awaitPurchase(timeoutMs: number): Promise<PurchaseCreditResult>;
  cameBack(type: "online" | "focus" | "visibilitychange"): Promise<{ firedAt: number; liveAfterMs: number }>;
}
declare global {
  interface Window {
    ledger: PageLedger;
  }
}

// CI installs chromium (.ci/run), so there a missing browser is a failure, not a skip.
const runnable = chromiumRunnable;
const title = runnable
  ? `a page on the built package spends, pages its history and sees a purchase credited live, on ${driverName}`
  : `SKIPPED: ${CHROMIUM} not found (apt-get install -y chromium); the SDK in a real browser`;

if (!runnable) console.warn(title);

const server = useLedgerServer();
let site: PageServer | undefined;
let app: string | undefined;
let chromium: Awaited<ReturnType<typeof launchChromium>> | undefined;

/**
 * The page (test/client/browser/page.ts) is bundled by esbuild as an app's bundler would: from an app
 * folder where @token-ledger/client is installed built (dist/ and its exports map), not from the
 * TypeScript sources. It is served with the API on one origin.
 */
beforeAll(async () => {
  if (!runnable) return;
  app = await installBuiltClient(["graphql-ws", "react", "react-dom"]);
  const entry = join(app, "app/page.ts");
  await copyFile(join(projectRoot, "test/client/browser/page.ts"), entry);
  const bundle = await build({
    entryPoints: [entry],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2020",
    minify: true,
    define: { "process.env.NODE_ENV": '"production"' },
    write: false,
  });
  const script = (bundle.outputFiles[0] as { text: string }).text;
  const html =
    '<!doctype html><meta charset="utf-8"><div id="root"></div><script type="module" src="/page.js"></script>';
  site = await servePage(
    { "/": { type: "text/html", body: html }, "/page.js": { type: "text/javascript", body: script } },
    server.url,
  );
});

afterAll(async () => {
  await chromium?.close();
  await site?.close();
  if (app) await rm(app, { recursive: true, force: true });
});

async function openPage(token: string): Promise<{ tab: Page; errors: string[] }> {
  chromium = await launchChromium();
  const tab = await chromium.browser.newPage();
  const errors: string[] = [];
  tab.on("pageerror", (error) => errors.push(error.message));
  await tab.goto(`${site?.url}?${new URLSearchParams({ token })}`);
  return { tab, errors };
}

describe("@token-ledger/client in a real browser", () => {
  (runnable ? it : it.skip)(title, async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: CI must install chromium`).toBe(true);
    const { userId, token } = await server.fundUser(500);
    const { tab, errors } = await openPage(token);
    await tab.waitForSelector('#balance[data-live="true"]:has-text("Tokens: 500")', { timeout: 30_000 });

    // Spends go over the browser's own fetch.
    expect(await tab.evaluate(() => window.ledger.spend(30))).toMatchObject({
      success: true,
      newBalance: 470,
      errorCode: null,
    });
    expect(await tab.evaluate(() => window.ledger.spend(5))).toMatchObject({
      success: true,
      newBalance: 465,
    });
    await tab.waitForSelector('#balance:has-text("Tokens: 465")');
    expect(await tab.evaluate(() => window.ledger.balanceWithDetachedFetch())).toMatchObject({
      balance: 465,
    });

    // The history, one page of two and the rest.
    const first = await tab.evaluate(() => window.ledger.history(2, null));
    expect(first.entries.map((entry) => [entry.kind, entry.amount])).toEqual([
      ["SPEND", -5],
      ["SPEND", -30],
    ]);
    expect(first.hasNextPage).toBe(true);
    const rest = await tab.evaluate((after) => window.ledger.history(2, after), first.endCursor);
    expect(rest.entries.map((entry) => [entry.kind, entry.amount])).toEqual([["GRANT", 500]]);
    expect(rest.hasNextPage).toBe(false);

    // A purchase: the page waits for it while RevenueCat's webhook delivery reaches the server.
    const credit = tab.evaluate(() => window.ledger.awaitPurchase(30_000));
    await expect.poll(() => tab.evaluate(() => window.ledger.waits)).toBe(1);
    const storeTransactionId = await server.purchase(userId);
    const credited = await credit;
    expect(credited).toMatchObject({
      status: "credited",
      balance: 565,
      entry: { kind: "PURCHASE", amount: 100 },
    });
    expect(credited.status === "credited" && credited.entry.metadata?.transactionId).toBe(storeTransactionId);
    await tab.waitForSelector('#balance:has-text("Tokens: 565")');

    for (const event of ["online", "visibilitychange"] as const) await reconnectsWhenBack(tab, event);
    expect(errors).toEqual([]);
  });
});

/**
 * The page's live connection drops (the path to the server is cut) and the client backs off; after
 * three refused attempts its next wait is 4 to 4.5 s. The server is reachable again and the page
 * fires `event` as a browser does on coming back: the client must reconnect at once, not after
 * the rest of that wait, and its log must say when the socket dropped (and why) and when it was
 * live again.
 */
async function reconnectsWhenBack(tab: Page, event: "online" | "visibilitychange"): Promise<void> {
  const pageSite = site as PageServer;
  const refusedBefore = pageSite.refused();
  const logsBefore = await tab.evaluate(() => window.ledger.logs.length);
  pageSite.cutSockets();
  await tab.waitForSelector('#balance[data-live="false"]');
  await expect
    .poll(() => pageSite.refused() - refusedBefore, { timeout: 20_000, interval: 20 })
    .toBeGreaterThanOrEqual(3);
  await sleep(300); // the third refusal's close reaches the client, which starts its next wait
  pageSite.restoreSockets();
  const back = await tab.evaluate((type) => window.ledger.cameBack(type), event);
  const logs = (await tab.evaluate(() => window.ledger.logs)).slice(logsBefore);
  const lines = logs.map((log) => log.line);
  console.log(`${event}: live ${back.liveAfterMs.toFixed(0)} ms after the event; log: ${lines.join(" | ")}`);
  const pending = logs
    .filter((log) => log.at <= back.firedAt && /reconnect in [\d.]+ s/.test(log.line))
    .at(-1);
  expect(pending, "the client logs each wait before a reconnect").toBeDefined();
  const waitEndsAt = (pending?.at ?? 0) + Number(/in ([\d.]+) s/.exec(pending?.line ?? "")?.[1]) * 1000;
  expect(waitEndsAt - back.firedAt).toBeGreaterThan(2000);
  // Live well before the wait would have ended (its figure is rounded to 0.1 s): within half of it.
  expect(back.liveAfterMs).toBeLessThan((waitEndsAt - back.firedAt) / 2);
  expect(lines).toContain(`Live updates reconnect now (${event})`);
  expect(lines[0]).toBe("Live updates dropped (close 1006)");
  expect(lines.at(-1)).toMatch(/^Live updates connected again after \d+\.\d s$/);
}
