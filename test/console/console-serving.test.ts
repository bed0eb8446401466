import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { useTestApp } from "../helpers/app.js";
import { projectRoot, startServerProcess } from "../helpers/process.js";

const run = promisify(execFile);

/** The console's budget: what a browser downloads, gzipped (script and stylesheet). */
const BUDGET_GZIP_BYTES = 30 * 1024;

async function consoleScript(baseUrl: string): Promise<{ status: number; text: string; gzipBytes: number }> {
  const response = await fetch(`${baseUrl}/console/console.js`, { headers: { "accept-encoding": "gzip" } });
  // fetch decodes gzip itself; the length header tells what went over the wire.
  const gzipBytes = Number(response.headers.get("content-length"));
  return { status: response.status, text: await response.text(), gzipBytes };
}

describe("the console's page and assets, served from the sources", () => {
  const t = useTestApp();

  it("serves the page with a strict content security policy and no token in it", async () => {
    const response = await fetch(`${t.url}/console`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(response.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(response.headers.get("content-security-policy")).toContain("default-src 'none'");
    const html = await response.text();
    expect(html).toContain('<script type="module" src="/console/console.js"></script>');
    expect(html).not.toMatch(/https?:\/\//);
  });

  it(`bundles everything the browser needs within ${BUDGET_GZIP_BYTES / 1024} kB gzipped, cached by ETag`, async () => {
    const script = await consoleScript(t.url);
    expect(script.status).toBe(200);
    // graphql-ws is bundled in; nothing is fetched from elsewhere.
    expect(script.text).toContain("graphql-transport-ws");
    expect(script.text).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    const style = await fetch(`${t.url}/console/console.css`, { headers: { "accept-encoding": "gzip" } });
    const styleBytes = Number(style.headers.get("content-length"));
    expect(script.gzipBytes + styleBytes).toBeLessThanOrEqual(BUDGET_GZIP_BYTES);
    const raw = await fetch(`${t.url}/console/console.js`, { headers: { "accept-encoding": "identity" } });
    const etag = raw.headers.get("etag") ?? "";
    expect(raw.headers.get("content-encoding")).toBeNull();
    const again = await fetch(`${t.url}/console/console.js`, { headers: { "if-none-match": etag } });
    expect(again.status).toBe(304);
    // Written to the log for the report: the size as served.
    console.info(`console: script ${script.gzipBytes} B + style ${styleBytes} B gzipped`);
  });
});

describe("the console under the other ways the service runs", () => {
  it("is served by `npm start` (the start bundle)", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "tl-console-"));
    const server = await startServerProcess({ DATA_DIR: dataDir }, [
      process.execPath,
      "src/scripts/start.mjs",
    ]);
    try {
      const script = await consoleScript(server.url);
      expect(script.status).toBe(200);
      expect(script.text).toContain("graphql-transport-ws");
    } finally {
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it("is served by `node dist/src/main.js` after the build, from the file the build wrote", async () => {
    // The build goes to a folder of its own under node_modules (so packages resolve as from dist/).
    const out = join(projectRoot, "node_modules", ".cache", `tl-dist-${randomBytes(4).toString("hex")}`);
    const dataDir = await mkdtemp(join(tmpdir(), "tl-console-"));
    try {
      await run("npx", ["tsc", "-p", "tsconfig.build.json", "--outDir", out], { cwd: projectRoot });
      const built = join(out, "src", "console", "console-app.js");
      await run(process.execPath, ["src/console/web/bundle.mjs", built], { cwd: projectRoot });
      const server = await startServerProcess({ DATA_DIR: dataDir }, [
        process.execPath,
        join(out, "src", "main.js"),
      ]);
      try {
        const script = await consoleScript(server.url);
        expect(script.status).toBe(200);
        const { readFile } = await import("node:fs/promises");
        expect(script.text).toBe(await readFile(built, "utf8"));
      } finally {
        await server.stop();
      }
    } finally {
      await rm(out, { recursive: true, force: true });
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 240_000);
});
