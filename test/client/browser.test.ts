import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { driverName } from "../helpers/database.js";
import { projectRoot } from "../helpers/process.js";
import { useLedgerServer } from "./helpers/ledger-server.js";

const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
// CI installs chromium (.ci/run), so there a missing browser is a failure, not a skip.
const runnable = existsSync(CHROMIUM) || process.env.CI === "true";
const title = runnable
  ? `a page bundling the SDK shows the balance in Chromium and follows a purchase live, on ${driverName}`
  : `SKIPPED: ${CHROMIUM} not found (apt-get install -y chromium); the SDK in a real browser`;

if (!runnable) console.warn(title);

const server = useLedgerServer();
let page: Server;
let pageUrl: string;

/** The page and its esbuild bundle (the SDK, its React hook, React), served on localhost. */
beforeAll(async () => {
  if (!runnable) return;
  const bundle = await build({
    entryPoints: [join(projectRoot, "test/client/browser/page.ts")],
    bundle: true,
    format: "esm",
    platform: "browser",
    minify: true,
    define: { "process.env.NODE_ENV": '"production"' },
    write: false,
  });
  const script = (bundle.outputFiles[0] as { text: string }).text;
  const html =
    '<!doctype html><meta charset="utf-8"><div id="root"></div><script type="module" src="/page.js"></script>';
  page = createServer((request, response) => {
    const js = request.url === "/page.js";
    response.writeHead(200, { "content-type": js ? "text/javascript" : "text/html" });
    response.end(js ? script : html);
  });
  await new Promise<void>((resolve) => page.listen(0, "127.0.0.1", resolve));
  pageUrl = `http://localhost:${(page.address() as { port: number }).port}/`;
});

afterAll(async () => {
  await new Promise((resolve) => page?.close(resolve));
});

describe("@token-ledger/client in a real browser", () => {
  (runnable ? it : it.skip)(title, async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: CI must install chromium`).toBe(true);
    const { userId, token } = await server.fundUser(500);
    const profile = await mkdtemp(join(tmpdir(), "tl-chromium-"));
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
    });
    try {
      const tab = await browser.newPage();
      const errors: string[] = [];
      tab.on("pageerror", (error) => errors.push(error.message));
      const query = new URLSearchParams({ api: server.graphqlUrl, token });
      await tab.goto(`${pageUrl}?${query}`);
      await tab.waitForSelector('#balance[data-live="true"]:has-text("Tokens: 500")', { timeout: 30_000 });
      await server.purchase(userId);
      await tab.waitForSelector('#balance:has-text("Tokens: 600")', { timeout: 30_000 });
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
      await rm(profile, { recursive: true, force: true });
    }
  });
});
