import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";

/** The request's id: the caller's X-Request-Id when it is a sane token, else a new UUID. */
export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers["x-request-id"];
  return typeof given === "string" && /^[\w.-]{1,100}$/.test(given) ? given : randomUUID();
}

/**
 * The caller's address. Each of the `trustedProxies` proxies in front of us appends the address it
 * saw to X-Forwarded-For, so counting that many hops back from our socket's peer gives the last
 * address no client could write; everything further left is the client's to invent.
 */
export function clientAddress(req: IncomingMessage, trustedProxies: number): string {
  const peer = req.socket.remoteAddress ?? "unknown";
  if (trustedProxies === 0) return peer;
  const header = req.headers["x-forwarded-for"];
  const forwarded = (Array.isArray(header) ? header.join(",") : (header ?? ""))
    .split(",")
    .map((hop) => hop.trim())
    .filter(Boolean);
  const hops = [peer, ...forwarded.reverse()];
  return hops[Math.min(trustedProxies, hops.length - 1)] ?? peer;
}
