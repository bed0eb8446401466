import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { printedSchema } from "../src/scripts/print-schema.js";

describe("schema.graphql", () => {
  it("matches the schema the code builds (run npm run schema:print after changing it)", () => {
    const committed = readFileSync(new URL("../schema.graphql", import.meta.url), "utf8");
    expect(printedSchema()).toBe(committed);
  });

  it("keeps the public contract the mobile app relies on", () => {
    const sdl = printedSchema();
    for (const line of [
      "balance: Balance!",
      "transactions(",
      "): TokenTransactionConnection!",
      "spendTokens(input: SpendTokensInput!): SpendTokensPayload!",
      "grantTokens(input: GrantTokensInput!): GrantTokensPayload!",
      "balanceChanged: BalanceChange!",
      "type TokenTransaction implements Node",
    ]) {
      expect(sdl).toContain(line);
    }
  });
});
