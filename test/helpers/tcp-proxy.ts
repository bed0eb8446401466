import { once } from "node:events";
import { connect, createServer, type Server, type Socket } from "node:net";

/**
 * A TCP proxy in front of PostgreSQL that a test controls: cut it (every connection closed, new ones
 * refused, like a network outage or a failover), or freeze it (every connection stays open and new
 * ones are accepted, but no byte passes either way: a paused server, a stuck disk, a partition that
 * drops nothing) and thaw it again (what was held back is passed on, as a resumed server would).
 */
export class OutageProxy {
  private server: Server | undefined;
  private readonly pairs = new Set<{ client: Socket; upstream: Socket }>();
  private frozen = false;
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  /** A postgres:// URL like `url` that goes through this proxy. */
  urlFor(url: string): string {
    const through = new URL(url);
    through.host = `127.0.0.1:${this.port}`;
    return through.toString();
  }

  async open(): Promise<void> {
    this.server = createServer((client) => {
      const upstream = connect(this.target.port, this.target.host);
      const pair = { client, upstream };
      this.pairs.add(pair);
      if (!this.frozen) pipePair(pair);
      upstream.on("error", () => client.destroy());
      client.on("error", () => upstream.destroy());
      for (const socket of [client, upstream]) {
        socket.on("close", () => {
          this.pairs.delete(pair);
          client.destroy();
          upstream.destroy();
        });
      }
    });
    this.server.listen(this.port, "127.0.0.1");
    await once(this.server, "listening");
    this.port = (this.server.address() as { port: number }).port;
  }

  /** Keeps every connection open (and accepts new ones) but stops passing bytes. */
  freeze(): void {
    this.frozen = true;
    for (const { client, upstream } of this.pairs) {
      client.unpipe();
      upstream.unpipe();
      client.pause();
      upstream.pause();
    }
  }

  /** Passes bytes again, first whatever was held back while frozen. */
  thaw(): void {
    this.frozen = false;
    for (const pair of this.pairs) pipePair(pair);
  }

  /** Closes every connection and stops accepting new ones (open() again to restore). */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.frozen = false;
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

function pipePair({ client, upstream }: { client: Socket; upstream: Socket }): void {
  client.pipe(upstream);
  upstream.pipe(client);
}
