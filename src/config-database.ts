import type { Env } from "./config-schema.js";

/**
 * A transaction-mode pooler (PgBouncer, Supavisor, Neon's, RDS Proxy) hands each transaction to any
 * server connection: LISTEN there hears nothing, and a session lock is taken on one connection and
 * released on another. Turning prepared statements off says DATABASE_URL is such a pooler, so the
 * listener and the migrator need a direct connection of their own (docs/scaling.md).
 */
export function poolerProblems(e: Env): string[] {
  const problems: string[] = [];
  if (!e.DATABASE_URL) {
    for (const name of ["DATABASE_DIRECT_URL", "DATABASE_PREPARE"] as const) {
      if (e[name] !== undefined)
        problems.push(`${name}: set only with DATABASE_URL (the embedded database has no pooler)`);
    }
    return problems;
  }
  if (e.DATABASE_PREPARE !== "false") return problems;
  if (!e.DATABASE_DIRECT_URL) {
    problems.push(
      "DATABASE_DIRECT_URL: required with DATABASE_PREPARE=false. Prepared statements are turned off " +
        "for a transaction-mode pooler, and through one LISTEN hears nothing (live balances stop) and " +
        "the migration lock is not held; give the listener and migrations a direct PostgreSQL URL " +
        "(or a session-mode pool)",
    );
  } else if (sameServer(e.DATABASE_DIRECT_URL, e.DATABASE_URL)) {
    problems.push(
      "DATABASE_DIRECT_URL: names the same host, port and database as DATABASE_URL; with " +
        "DATABASE_PREPARE=false it must bypass the pooler (PostgreSQL's own port, or a session-mode pool)",
    );
  }
  return problems;
}

/** Host, port and database name only: two URLs differing in user or options reach the same place. */
function sameServer(a: string, b: string): boolean {
  const where = (text: string) => {
    const url = new URL(text);
    return `${url.hostname}:${url.port || "5432"}${url.pathname}`;
  };
  try {
    return where(a) === where(b);
  } catch {
    return false;
  }
}
