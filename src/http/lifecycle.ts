import type { Server } from "node:http";

export async function listen(server: Server, port: number, host: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

/**
 * Stops accepting, runs `beforeWaiting` (closing WebSockets), then waits for in-flight requests: idle
 * keep-alive sockets close at once, busy ones once their response is sent, and whatever is still open
 * after `timeoutMs` is closed.
 */
export async function stopServer(
  server: Server,
  timeoutMs: number,
  beforeWaiting: () => Promise<void> | undefined,
): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const idle = setInterval(() => server.closeIdleConnections(), 100);
  await beforeWaiting();
  const deadline = setTimeout(() => server.closeAllConnections(), timeoutMs);
  await closed;
  clearInterval(idle);
  clearTimeout(deadline);
}
