import type { IncomingMessage, ServerResponse } from "node:http";
import type { Route } from "../http/router.js";
import { type Asset, loadConsoleAssets } from "./console-assets.js";

export const CONSOLE_PATH = "/console";

/**
 * The page itself is static and holds nothing: the token stays in the browser (the URL's fragment,
 * then session storage) and every read goes to /graphql with it, so the page needs no session of its
 * own. Scripts and styles come only from this server (no CDN: it works offline).
 */
const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>token-ledger console</title>
<link rel="stylesheet" href="/console/console.css">
<script type="module" src="/console/console.js"></script>
</head><body><div id="app"><main><p>Loading the console…</p></main></div>
<noscript>The console needs JavaScript.</noscript></body></html>`;

const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

function send(req: IncomingMessage, res: ServerResponse, asset: Asset, cache: string): void {
  if (req.headers["if-none-match"] === asset.etag) {
    res.writeHead(304, { etag: asset.etag, "cache-control": cache });
    res.end();
    return;
  }
  const gzip = /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
  const body = gzip ? asset.gzip : asset.body;
  res.writeHead(200, {
    "content-type": asset.contentType,
    "content-length": body.length,
    etag: asset.etag,
    "cache-control": cache,
    vary: "accept-encoding",
    ...(gzip ? { "content-encoding": "gzip" } : {}),
    ...SECURITY_HEADERS,
  });
  res.end(req.method === "HEAD" ? undefined : body);
}

/** GET /console (the page), /console/console.js and /console/console.css. */
export function consoleRoutes(): Route[] {
  const page = Buffer.from(PAGE);
  return [
    {
      method: "GET",
      path: CONSOLE_PATH,
      auth: "none",
      async handle(req, res) {
        res.writeHead(200, {
          "content-type": "text/html; charset=utf-8",
          "content-length": page.length,
          "cache-control": "no-store",
          ...SECURITY_HEADERS,
        });
        res.end(req.method === "HEAD" ? undefined : page);
      },
    },
    {
      method: "GET",
      path: `${CONSOLE_PATH}/console.js`,
      auth: "none",
      handle: async (req, res) => send(req, res, (await loadConsoleAssets()).script, "no-cache"),
    },
    {
      method: "GET",
      path: `${CONSOLE_PATH}/console.css`,
      auth: "none",
      handle: async (req, res) => send(req, res, (await loadConsoleAssets()).style, "no-cache"),
    },
  ];
}
