import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium } from "playwright-core";

/** Debian's Chromium, which .ci/run installs; under CI a missing browser fails rather than skips. */
export const CHROMIUM = "/usr/bin/chromium";
export const chromiumRunnable = existsSync(CHROMIUM) || process.env.CI === "true";

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

/** A headless Chromium on a profile of its own; `close` ends it and removes the profile. */
export async function launchChromium(): Promise<{ browser: BrowserContext; close(): Promise<void> }> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: CI must install chromium`);
  const profile = await mkdtemp(join(tmpdir(), "tl-chromium-"));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  return {
    browser,
    async close() {
      await browser.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** Runs `use` with a headless Chromium, closed and removed afterwards. */
export async function withChromium<T>(use: (browser: BrowserContext) => Promise<T>): Promise<T> {
  const launched = await launchChromium();
  try {
    return await use(launched.browser);
  } finally {
    await launched.close();
  }
}
