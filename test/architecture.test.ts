import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { projectRoot } from "./helpers/process.js";
import {
  code,
  migrations,
  outsideFunctions,
  type SqlFile,
  sourceSqlFiles,
  sqlFunctions,
} from "./helpers/sql.js";

/**
 * The floor plan, checked: the ledger is the only door for money, infrastructure knows no domain,
 * and services know no transport. A file that breaks a rule is named in the failure.
 */

const src = join(projectRoot, "src");

function sourceFiles(dir: string, withClient = false): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory())
      return name === "client" && !withClient ? [] : sourceFiles(path, withClient);
    return path.endsWith(".ts") || path.endsWith(".tsx") ? [path] : [];
  });
}

const read = (path: string) => ({ path: relative(src, path), text: readFileSync(path, "utf8") });
const files = sourceFiles(src).map(read);

/**
 * The SQL functions that may call ledger_apply besides the ledger module's own statements: each one
 * is a door to the money function, so each is named here, on purpose.
 */
const MAY_CALL_LEDGER_APPLY = ["revenuecat_record"];
/** The ledger's tables, as SQL names them. */
const LEDGER_TABLES =
  "token_balances|token_transactions|token_lots|token_lot_moves|token_holds|token_hold_pins";
/**
 * Migrations whose own statements may write lots: 0010 opened a legacy lot per existing balance, and
 * 0011 brought those lots to the balances before ledger_apply began writing lots.
 */
const LOT_BACKFILLS = ["0010_token_lots.sql", "0011_lots_in_ledger_apply.sql"];
const sql: SqlFile[] = [...migrations(), ...sourceSqlFiles()];

/** The module specifiers a file imports (static and type imports, and side-effect imports). */
function importsOf(text: string): string[] {
  return [...text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"|^\s*import\s+"([^"]+)"/gm)].map(
    (match) => (match[1] ?? match[2]) as string,
  );
}

/** Every file a file depends on: static, type-only and dynamic imports of relative paths. */
function dependenciesOf(file: { path: string; text: string }): string[] {
  const dynamic = [...file.text.matchAll(/\bimport\(\s*"([^"]+)"\s*\)/g)].map((match) => match[1] as string);
  return [...importsOf(file.text), ...dynamic]
    .filter((specifier) => specifier.startsWith("."))
    .map((specifier) => join(dirname(file.path), specifier).replace(/\.js$/, ".ts"));
}

/** Each import cycle once, as the chain of files that closes it. */
function importCycles(graph: Map<string, string[]>): string[] {
  const cycles: string[] = [];
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const visit = (node: string) => {
    state.set(node, "open");
    path.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === "open") cycles.push([...path.slice(path.indexOf(next)), next].join(" → "));
      else if (!state.has(next) && graph.has(next)) visit(next);
    }
    path.pop();
    state.set(node, "done");
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node);
  return cycles;
}

describe("architecture", () => {
  it("only modules/ledger/ and db/ name the ledger's tables", () => {
    const ledgerTables =
      /\b(token_balances|token_transactions|token_lots|token_lot_moves|balancesTable|ledgerEntriesTable|lotsTable|lotMovesTable|token_holds|token_hold_pins|holdsTable|holdPinsTable)\b/;
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

  it("in SQL, only ledger_apply writes the ledger's tables", () => {
    const writesOf = (tables: string) =>
      new RegExp(`\\b(INSERT\\s+INTO|UPDATE|DELETE\\s+FROM|TRUNCATE)\\s+(${tables})\\b`, "i");
    const writes = writesOf(LEDGER_TABLES);
    const offenders = sql.flatMap((file) => {
      // A lot backfill may write lots outside a function, never balances or entries.
      const outside = LOT_BACKFILLS.some((name) => file.file.endsWith(name))
        ? writesOf("token_balances|token_transactions")
        : writes;
      return [
        ...sqlFunctions(file)
          .filter((fn) => fn.name !== "ledger_apply" && writes.test(code(fn.body)))
          .map((fn) => `${fn.file}: ${fn.name} writes ${code(fn.body).match(writes)?.[0]}`),
        ...(outside.test(outsideFunctions(file))
          ? [`${file.file}: ${outsideFunctions(file).match(outside)?.[0]}`]
          : []),
      ];
    });
    expect(offenders).toEqual([]);
  });

  it("in SQL, only the listed functions call ledger_apply; in TypeScript, only modules/ledger/ names it", () => {
    const calls = /\bledger_apply\s*\(/i;
    const offenders = sql.flatMap((file) => [
      ...sqlFunctions(file)
        .filter((fn) => calls.test(code(fn.body)) && !MAY_CALL_LEDGER_APPLY.includes(fn.name))
        .map((fn) => `${fn.file}: ${fn.name} calls ledger_apply`),
      ...(calls.test(outsideFunctions(file)) ? [`${file.file}: a statement calls ledger_apply`] : []),
    ]);
    const named = files
      .filter((file) => !file.path.startsWith("modules/ledger/") && /\bledger_apply\b/.test(file.text))
      .map((file) => `${file.path} names ledger_apply`);
    expect([...offenders, ...named]).toEqual([]);
  });

  it("no import cycles in src/, type-only and dynamic imports included", () => {
    const all = sourceFiles(src, true).map(read);
    const graph = new Map(all.map((file) => [file.path, dependenciesOf(file)]));
    expect(importCycles(graph)).toEqual([]);
  });

  it("no file in src/ is over 300 lines", () => {
    const long = files.filter((file) => file.text.split("\n").length > 301).map((file) => file.path);
    expect(long).toEqual([]);
  });
});
