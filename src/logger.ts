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
