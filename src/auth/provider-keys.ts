import type { Logger } from "pino";
import { Gauge } from "prom-client";
import type { Metrics } from "../metrics.js";
import { createRemoteKeySet, type RemoteKeySet } from "./key-set.js";

/**
 * The JWKS_URL key set, watched: each failed fetch is a warning with its cause and a count by reason,
 * `token_jwks_reachable` says whether the last fetch worked, and the recovery is logged. Tokens are
 * never part of any of it.
 */
export function createProviderKeySet(deps: {
  url: string;
  maxAgeMs: number;
  logger: Logger;
  metrics: Metrics;
}): RemoteKeySet {
  const { url, logger, metrics } = deps;
  const reachable = new Gauge({
    name: "token_jwks_reachable",
    help: "1 while the last fetch of the JWKS_URL key set worked, 0 while it fails (cached keys still verify).",
    registers: [metrics.registry],
  });
  reachable.set(1);
  const keySet = createRemoteKeySet({
    url,
    maxAgeMs: deps.maxAgeMs,
    onFailure(error) {
      metrics.jwksFetchFailures.inc({ reason: error.reason });
      reachable.set(0);
      const { keys } = keySet.status();
      logger.warn(
        { jwksUrl: url, reason: error.reason, cause: error.message, cachedKeys: keys },
        keys > 0
          ? "identity provider key set could not be fetched; verifying with the cached keys"
          : "identity provider key set could not be fetched; tokens are answered 503 AUTH_UNAVAILABLE until it can",
      );
    },
    onRecovered(downForMs) {
      reachable.set(1);
      logger.info({ jwksUrl: url, downForMs }, "identity provider key set reachable again");
    },
  });
  return keySet;
}
