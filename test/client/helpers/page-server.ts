import { createServer, request } from "node:http";
import { connect, type Socket } from "node:net";

/**
 * Serves a test page and passes everything else (GraphQL over HTTP, and WebSocket upgrades) on to
 * the ledger server, so the page calls its API on its own origin, as a web app behind one domain
 * does. The WebSocket path can be cut, to take the page's live connection away as a network outage
 * would, and restored.
 */
export interface PageServer {
  /** http://localhost:<port>/ */
  readonly url: string;
  /** Closes every open WebSocket and refuses new ones until `restoreSockets()`. */
  cutSockets(): void;
  restoreSockets(): void;
  /** WebSocket connections refused while cut. */
  refused(): number;
  close(): Promise<void>;
}

export async function servePage(
  files: Record<string, { type: string; body: string }>,
  apiUrl: string,
): Promise<PageServer> {
  const api = new URL(apiUrl);
  const port = Number(api.port);
  const tunnels = new Set<Socket>();
  let cut = false;
  let refused = 0;

  const server = createServer((incoming, outgoing) => {
    const file = files[new URL(incoming.url ?? "/", "http://page").pathname];
    if (file) {
      outgoing.writeHead(200, { "content-type": file.type }).end(file.body);
      return;
    }
    const upstream = request(
      { host: api.hostname, port, method: incoming.method, path: incoming.url, headers: incoming.headers },
      (answer) => {
        outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(outgoing);
      },
    );
    upstream.on("error", () => outgoing.writeHead(502).end());
    incoming.pipe(upstream);
  });

  server.on("upgrade", (incoming, socket: Socket, head: Buffer) => {
    if (cut) {
      refused += 1;
      socket.destroy();
      return;
    }
    const upstream = connect(port, api.hostname, () => {
      const lines = [`${incoming.method} ${incoming.url} HTTP/1.1`];
      for (let i = 0; i < incoming.rawHeaders.length; i += 2) {
        lines.push(`${incoming.rawHeaders[i]}: ${incoming.rawHeaders[i + 1]}`);
      }
      upstream.write(`${lines.join("\r\n")}\r\n\r\n`);
      upstream.write(head);
      socket.pipe(upstream).pipe(socket);
    });
    for (const end of [socket, upstream]) {
      tunnels.add(end);
      end.on("error", () => undefined);
      end.on("close", () => {
        tunnels.delete(end);
        socket.destroy();
        upstream.destroy();
      });
    }
  });

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://localhost:${(server.address() as { port: number }).port}/`,
    cutSockets() {
      cut = true;
      for (const tunnel of tunnels) tunnel.destroy();
    },
    restoreSockets() {
      cut = false;
    },
    refused: () => refused,
    async close() {
      for (const tunnel of tunnels) tunnel.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
