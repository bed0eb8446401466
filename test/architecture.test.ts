import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { projectRoot } from "./helpers/process.js";

/**
 * The floor plan, checked: the ledger is the only door for money, infrastructure knows no domain,
 * and services know no transport. A file that breaks a rule is named in the failure.
 */

const src = join(projectRoot, "src");

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === "client" ? [] : sourceFiles(path);
    return path.endsWith(".ts") ? [path] : [];
  });
}

const files = sourceFiles(src).map((path) => ({
  path: relative(src, path),
  text: readFileSync(path, "utf8"),
}));

/** The module specifiers a file imports (static and type imports, and side-effect imports). */
function importsOf(text: string): string[] {
  return [...text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"|^\s*import\s+"([^"]+)"/gm)].map(
    (match) => (match[1] ?? match[2]) as string,
  );
}

describe("architecture", () => {
  it("only modules/ledger/ and db/ name the ledger's tables", () => {
    const ledgerTables = /\b(token_balances|token_transactions|balancesTable|ledgerEntriesTable)\b/;
    const offenders = files
      .filter((file) => !file.path.startsWith("modules/ledger/") && !file.path.startsWith("db/"))
      .filter((file) => ledgerTables.test(file.text))
      .map((file) => file.path);
    expect(offenders).toEqual([]);
  });

  it("graphql/ imports no module, except schema.ts gathering each module's *.graphql.ts", () => {
    const offenders = files
      .filter((file) => file.path.startsWith("graphql/"))
      .flatMap((file) =>
        importsOf(file.text)
          .filter((specifier) => specifier.includes("/modules/"))
          .filter((specifier) => !(file.path === "graphql/schema.ts" && /\.graphql\.js$/.test(specifier)))
          .map((specifier) => `${file.path} imports ${specifier}`),
      );
    expect(offenders).toEqual([]);
  });

  it("no *.service.ts imports HTTP, GraphQL or context code", () => {
    const transport =
      /^(node:http|graphql|graphql-yoga|graphql-ws|ws|@pothos\/.*)$|\/(http|graphql)\/|\/context\.js$/;
    const offenders = files
      .filter((file) => file.path.endsWith(".service.ts"))
      .flatMap((file) =>
        importsOf(file.text)
          .filter((specifier) => transport.test(specifier))
          .map((specifier) => `${file.path} imports ${specifier}`),
      );
    expect(offenders).toEqual([]);
  });

  it("the ledger's statements are private to the ledger module", () => {
    const offenders = files
      .filter((file) => !file.path.startsWith("modules/ledger/"))
      .filter((file) => importsOf(file.text).some((specifier) => specifier.endsWith("ledger.statements.js")))
      .map((file) => file.path);
    expect(offenders).toEqual([]);
  });

  it("no file in src/ is over 300 lines", () => {
    const long = files.filter((file) => file.text.split("\n").length > 301).map((file) => file.path);
    expect(long).toEqual([]);
  });
});
