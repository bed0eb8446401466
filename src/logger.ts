import { once } from "node:events";
import pino, { type Logger } from "pino";

/**
 * pino JSON logs. Whatever might carry a credential is redacted by path, as a second line of defence:
 * the code never logs tokens, secrets or raw webhook bodies in the first place.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "token-ledger" },
      redact: {
        paths: [
          "authorization",
          "*.authorization",
          "headers.authorization",
          "*.headers.authorization",
          "token",
          "*.token",
          "secret",
          "*.secret",
          "connectionParams",
          "rawBody",
        ],
        censor: "[redacted]",
      },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}

/**
 * Exits once every line logged so far has reached the log's file descriptor (at most `graceMs` later).
 * pino writes asynchronously, and a write that meets a full pipe (a log collector reading slowly) is
 * retried later: `process.exit` right after the last line can lose it, such as the one saying the stop
 * was clean.
 */
export async function exitWhenLogged(logger: Logger, code: number, graceMs = 2_000): Promise<never> {
  const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym];
  if (isSonicBoom(stream) && !stream.destroyed) {
    const closed = Promise.race([once(stream, "close"), once(stream, "error")]);
    stream.end();
    await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, graceMs))]);
  }
  process.exit(code);
}

/** pino's own destination (sonic-boom, a dependency of pino's rather than ours). */
function isSonicBoom(
  stream: unknown,
): stream is ReturnType<typeof pino.destination> & { destroyed: boolean } {
  return (
    typeof stream === "object" &&
    stream !== null &&
    stream.constructor.name === "SonicBoom" &&
    typeof (stream as { end?: unknown }).end === "function"
  );
}
