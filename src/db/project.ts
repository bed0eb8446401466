import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The project's root folder (the one holding drizzle/), found from here whether running from src or dist. */
export function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 6; depth += 1) {
    if (existsSync(join(dir, "drizzle", "meta", "_journal.json"))) return dir;
    dir = dirname(dir);
  }
  throw new Error("drizzle/ migrations folder not found");
}

/** The drizzle/ folder of migrations; the same folder serves both drivers. */
export function migrationsFolder(): string {
  return join(projectRoot(), "drizzle");
}
