import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { projectRoot } from "./process.js";

// Reading the project's SQL: the migrations in the order drizzle applies them, the money functions'
// source files, and the functions each defines.

export interface SqlFile {
  /** Relative to the project root. */
  readonly file: string;
  readonly text: string;
}

export interface SqlFunction {
  readonly file: string;
  readonly name: string;
  /** The whole CREATE statement, from CREATE to the closing `$$;`. */
  readonly definition: string;
  /** What is between the dollar quotes. */
  readonly body: string;
}

/** drizzle/'s migrations, in the journal's order (the order they are applied in). */
export function migrations(): SqlFile[] {
  const journal = JSON.parse(readFileSync(join(projectRoot, "drizzle/meta/_journal.json"), "utf8")) as {
    entries: { tag: string }[];
  };
  return journal.entries.map(({ tag }) => read(`drizzle/${tag}.sql`));
}

/** The SQL source files under src/ (the current form of each function a migration copies). */
export function sourceSqlFiles(): SqlFile[] {
  const walk = (dir: string): string[] =>
    readdirSync(dir).flatMap((name) => {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) return walk(path);
      return path.endsWith(".sql") ? [path] : [];
    });
  return walk(join(projectRoot, "src")).map((path) => read(relative(projectRoot, path)));
}

function read(file: string): SqlFile {
  return { file, text: readFileSync(join(projectRoot, file), "utf8") };
}

const CREATE_FUNCTION = /CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+(\w+)\s*\([\s\S]*?\$\$([\s\S]*?)\$\$\s*;/gi;

/** SQL without its `--` comments: what the database runs. */
export function code(text: string): string {
  return text.replace(/--.*$/gm, "");
}

/** Every CREATE FUNCTION in a file, in order. */
export function sqlFunctions({ file, text }: SqlFile): SqlFunction[] {
  return [...text.matchAll(CREATE_FUNCTION)].map((match) => ({
    file,
    name: (match[1] as string).toLowerCase(),
    definition: match[0],
    body: match[2] as string,
  }));
}

/** The file's SQL with every function and every comment taken out: the statements of their own. */
export function outsideFunctions({ text }: SqlFile): string {
  return code(text.replace(CREATE_FUNCTION, ""));
}

/** The newest migration's definition of each function: the one the database runs. */
export function currentDefinitions(): Map<string, SqlFunction> {
  const current = new Map<string, SqlFunction>();
  for (const migration of migrations()) {
    for (const fn of sqlFunctions(migration)) current.set(fn.name, fn);
  }
  return current;
}
