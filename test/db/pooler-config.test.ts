import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";
import { startupSummary } from "../../src/startup-summary.js";

const POOLER = "postgres://app:secret@pgbouncer.internal:6432/ledger";
const DIRECT = "postgres://app:secret@db.internal:5432/ledger";

function problemsOf(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems.join("\n");
    throw error;
  }
  return "";
}

describe("connections through a pooler (DATABASE_DIRECT_URL, DATABASE_PREPARE)", () => {
  it("defaults to one URL for everything, with prepared statements", () => {
    const config = loadConfig({ DATABASE_URL: DIRECT });
    expect(config).toMatchObject({ databaseDirectUrl: undefined, databasePrepare: true });
  });

  it("takes a direct URL for LISTEN and migrations, and turns prepared statements off", () => {
    const config = loadConfig({
      DATABASE_URL: POOLER,
      DATABASE_DIRECT_URL: DIRECT,
      DATABASE_PREPARE: "false",
    });
    expect(config).toMatchObject({ databaseUrl: POOLER, databaseDirectUrl: DIRECT, databasePrepare: false });
  });

  it("refuses prepared statements off without a direct URL: LISTEN and the migration lock would go through the pooler", () => {
    expect(problemsOf({ DATABASE_URL: POOLER, DATABASE_PREPARE: "false" })).toMatch(
      /DATABASE_DIRECT_URL: required with DATABASE_PREPARE=false.*LISTEN hears nothing/,
    );
  });

  it("refuses a direct URL that names the pooler itself", () => {
    const sameWithOtherUser = "postgres://other@pgbouncer.internal:6432/ledger?sslmode=disable";
    expect(
      problemsOf({ DATABASE_URL: POOLER, DATABASE_DIRECT_URL: sameWithOtherUser, DATABASE_PREPARE: "false" }),
    ).toMatch(/names the same host, port and database as DATABASE_URL/);
  });

  it("refuses both settings on the embedded database, and a direct URL that is not postgres://", () => {
    const problems = problemsOf({ DATABASE_DIRECT_URL: DIRECT, DATABASE_PREPARE: "false" });
    expect(problems).toMatch(/DATABASE_DIRECT_URL: set only with DATABASE_URL/);
    expect(problems).toMatch(/DATABASE_PREPARE: set only with DATABASE_URL/);
    expect(problemsOf({ DATABASE_URL: POOLER, DATABASE_DIRECT_URL: "mysql://x" })).toMatch(
      /DATABASE_DIRECT_URL: must be a postgres/,
    );
    expect(problemsOf({ DATABASE_URL: POOLER, DATABASE_PREPARE: "no" })).toMatch(
      /DATABASE_PREPARE: must be true or false/,
    );
  });

  it("the start-up line says where requests, LISTEN and migrations go, without credentials", () => {
    const config = loadConfig({
      DATABASE_URL: POOLER,
      DATABASE_DIRECT_URL: DIRECT,
      DATABASE_PREPARE: "false",
    });
    const { message } = startupSummary(config, {
      address: "127.0.0.1",
      port: 1,
      driver: "postgres",
      migrations: "none pending",
    });
    expect(message).toContain(
      "PostgreSQL pgbouncer.internal:6432/ledger (LISTEN and migrations via db.internal:5432/ledger) without prepared statements",
    );
    expect(message).not.toContain("secret");
  });
});
