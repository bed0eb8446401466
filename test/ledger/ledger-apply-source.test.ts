import { describe, expect, it } from "vitest";
import { currentDefinitions, sourceSqlFiles, sqlFunctions } from "../helpers/sql.js";

// The SQL functions live as source under src/**/sql/; a migration copies each change whole. The
// database runs the newest migration's copy, so that copy must be the source, word for word: a
// source edited without a migration, or a migration edited without its source, fails here.

const sources = sourceSqlFiles().flatMap(sqlFunctions);
const current = currentDefinitions();

describe("the SQL functions' source files", () => {
  it("hold ledger_apply and revenuecat_record", () => {
    expect(sources.map((fn) => fn.name)).toEqual(
      expect.arrayContaining(["ledger_apply", "revenuecat_record", "revenuecat_lock_key"]),
    );
  });

  it.each(sources.map((fn) => [fn.name, fn.file, fn] as const))(
    "the newest migration that defines %s carries %s",
    (name, _file, source) => {
      const migrated = current.get(name);
      expect(migrated, `no migration defines ${name}`).toBeDefined();
      expect(migrated?.definition, `${migrated?.file} differs from ${source.file}`).toBe(source.definition);
    },
  );
});
