import { writeFileSync } from "node:fs";
import { lexicographicSortSchema, printSchema } from "graphql";
import { schema } from "../graphql/schema.js";

/** schema.graphql is a build artifact: printed from the Pothos schema, checked by a drift test. */
export function printedSchema(): string {
  return `${printSchema(lexicographicSortSchema(schema))}\n`;
}

if (process.argv[1]?.endsWith("print-schema.ts") || process.argv[1]?.endsWith("print-schema.js")) {
  writeFileSync(new URL("../../schema.graphql", import.meta.url), printedSchema());
  process.stdout.write("wrote schema.graphql\n");
}
