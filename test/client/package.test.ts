import { execFile } from "node:child_process";
import { readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { projectRoot } from "../helpers/process.js";
import { clientDir, installBuiltClient } from "./helpers/installed-package.js";
import { bundledSize, CORE_BUDGET_BYTES } from "./scripts/size.js";

const run = promisify(execFile);
const temporary: string[] = [];
afterAll(async () => {
  await Promise.all(temporary.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** The module specifiers a source file imports. */
async function importsOf(file: string): Promise<string[]> {
  const text = await readFile(join(clientDir, file), "utf8");
  return [...text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"/gm)].map(
    (match) => match[1] as string,
  );
}

describe("the @token-ledger/client package", () => {
  it("imports nothing of the server: only its own files, graphql-ws, and react in react.ts", async () => {
    const files = (await readdir(clientDir)).filter((name) => name.endsWith(".ts"));
    expect(files).toContain("index.ts");
    for (const file of files) {
      const outside = (await importsOf(file)).filter((specifier) => !specifier.startsWith("./"));
      const allowed = file === "react.ts" ? ["react"] : ["graphql-ws/client"];
      expect(
        outside.filter((specifier) => !allowed.includes(specifier)),
        file,
      ).toEqual([]);
    }
  });

  it("declares graphql-ws as its only dependency and react as an optional peer", async () => {
    const manifest = JSON.parse(await readFile(join(clientDir, "package.json"), "utf8"));
    expect(Object.keys(manifest.dependencies)).toEqual(["graphql-ws"]);
    expect(manifest.peerDependenciesMeta).toEqual({ react: { optional: true } });
    expect(manifest.exports["."]).toEqual({ types: "./dist/index.d.ts", default: "./dist/index.js" });
    expect(manifest.exports["./react"]).toEqual({ types: "./dist/react.d.ts", default: "./dist/react.js" });
  });

  it("builds with tsc (DOM types, no Node types) and loads through its exports map as installed", async () => {
    const root = await installBuiltClient(["graphql-ws", "react"]);
    temporary.push(root);
    await writeFile(
      join(root, "app/check.mjs"),
      `import * as core from "@token-ledger/client";
       import * as react from "@token-ledger/client/react";
       console.log(JSON.stringify({ core: Object.keys(core).sort(), react: Object.keys(react).sort() }));`,
    );
    const { stdout } = await run(process.execPath, [join(root, "app/check.mjs")]);
    expect(JSON.parse(stdout)).toEqual({
      core: ["HoldError", "TokenLedgerError", "createTokenClient"],
      react: [
        "TokenLedgerProvider",
        "describeTransaction",
        "useSpendTokens",
        "useTokenBalance",
        "useTokenClient",
        "useTransactions",
      ],
    });
  });

  it("names every TransactionKind of schema.graphql in its own TransactionKind", async () => {
    const schema = await readFile(join(projectRoot, "schema.graphql"), "utf8");
    const kinds = [
      ...(/^enum TransactionKind \{([^}]*)\}/m.exec(schema)?.[1] ?? "").matchAll(/^\s*([A-Z_]+)\s*$/gm),
    ];
    // TransactionKind is the type of protocol.ts's TRANSACTION_KINDS (types.ts re-exports it).
    const protocol = await readFile(join(clientDir, "protocol.ts"), "utf8");
    const union = /export const TRANSACTION_KINDS = \[([^\]]*)\]/.exec(protocol)?.[1] ?? "";
    expect(kinds.length).toBeGreaterThan(4);
    for (const [, kind] of kinds) expect(union, `TransactionKind lacks ${kind}`).toContain(`"${kind}"`);
  });

  it(`keeps the core within ${CORE_BUDGET_BYTES / 1024} kB gzipped (graphql-ws not counted)`, async () => {
    const { gzip } = await bundledSize("index.ts", ["graphql-ws", "graphql-ws/*"]);
    expect(gzip).toBeLessThanOrEqual(CORE_BUDGET_BYTES);
  });
});
