import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { promisify } from "node:util";
import { brotliCompress, constants, gzip } from "node:zlib";
import type { renderGraphiQL as RenderGraphiQL } from "@graphql-yoga/render-graphiql";

/**
 * GraphiQL for development, served by us rather than by yoga for two reasons:
 *
 * - Subscriptions: yoga's GraphiQL sends the Headers tab with each HTTP request, but over graphql-ws
 *   a browser can set no header, and its fetcher does not copy the tab into `connectionParams`, so a
 *   subscription reached the server without a token. The page below gives GraphiQL a
 *   `connectionParams` function that reads the Headers tab (which GraphiQL keeps in localStorage) each
 *   time the socket connects.
 * - Size: the page inlines GraphiQL's whole bundle (about 9 MB). It is rendered once, compressed
 *   once (Brotli, else gzip), and answered with an ETag, so a reload costs a 304.
 */
export interface GraphiqlPage {
  /** Answers a GET for the page (a browser asking for HTML); false when the request is not one. */
  serve(req: IncomingMessage, res: ServerResponse): Promise<boolean>;
}

/** Reads the active tab's headers (a JSON text) from GraphiQL's storage, as connectionParams. */
const CONNECTION_PARAMS = `function tokenLedgerConnectionParams() {
  try {
    var tabs = JSON.parse(localStorage.getItem("graphiql:tabState") || "null");
    var tab = tabs && tabs.tabs && tabs.tabs[tabs.activeTabIndex];
    var text = (tab && tab.headers) || localStorage.getItem("graphiql:headers") || "{}";
    var headers = JSON.parse(text);
    return headers && typeof headers === "object" ? headers : {};
  } catch (error) {
    return {};
  }
}`;

const RENDER_CALL = "YogaGraphiQL.renderYogaGraphiQL(";

export function createGraphiqlPage(options: { title: string }): GraphiqlPage {
  let prepared: Promise<Prepared> | undefined;
  return {
    async serve(req, res) {
      const method = req.method ?? "GET";
      if ((method !== "GET" && method !== "HEAD") || !req.headers.accept?.includes("text/html")) return false;
      prepared ??= prepare(options.title);
      const page = await prepared;
      const headers: Record<string, string> = {
        "content-type": "text/html; charset=utf-8",
        etag: page.etag,
        vary: "Accept-Encoding",
        "cache-control": "no-cache",
      };
      if (req.headers["if-none-match"] === page.etag) {
        res.writeHead(304, headers).end();
        return true;
      }
      const accepted = String(req.headers["accept-encoding"] ?? "");
      const [encoding, body] = /\bbr\b/.test(accepted)
        ? ["br", page.br]
        : /\bgzip\b/.test(accepted)
          ? ["gzip", page.gzip]
          : [undefined, page.html];
      if (encoding) headers["content-encoding"] = encoding;
      headers["content-length"] = String(body.length);
      res.writeHead(200, headers).end(method === "HEAD" ? undefined : body);
      return true;
    },
  };
}

interface Prepared {
  readonly html: Buffer;
  readonly gzip: Buffer;
  readonly br: Buffer;
  readonly etag: string;
}

async function prepare(title: string): Promise<Prepared> {
  // The package carries GraphiQL's whole bundle: loaded on the first request for the page only.
  const { renderGraphiQL } = createRequire(import.meta.url)("@graphql-yoga/render-graphiql") as {
    renderGraphiQL: typeof RenderGraphiQL;
  };
  const rendered = renderGraphiQL({ title, subscriptionsProtocol: "WS" } as Parameters<
    typeof RenderGraphiQL
  >[0]);
  const at = rendered.lastIndexOf(RENDER_CALL);
  if (at < 0) throw new Error("GraphiQL's page changed: its render call was not found");
  const html = Buffer.from(
    `${rendered.slice(0, at)}${CONNECTION_PARAMS}
        (function (root, options) {
          options.connectionParams = tokenLedgerConnectionParams;
          ${RENDER_CALL}root, options);
        })(${rendered.slice(at + RENDER_CALL.length)}`,
  );
  const [gzipped, brotli] = await Promise.all([
    promisify(gzip)(html, { level: 6 }),
    promisify(brotliCompress)(html, {
      params: { [constants.BROTLI_PARAM_QUALITY]: 6, [constants.BROTLI_PARAM_SIZE_HINT]: html.length },
    }),
  ]);
  const etag = `"${createHash("sha256").update(html).digest("base64url").slice(0, 27)}"`;
  return { html, gzip: gzipped, br: brotli, etag };
}
