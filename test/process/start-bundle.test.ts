import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { describe, expect, it } from "vitest";
// @ts-expect-error: the start script is plain JavaScript, without types.
import { bundleOptions } from "../../src/scripts/start.mjs";
import { startServerProcess } from "../helpers/process.js";

/** Files of node_modules that the bundle holds both as `x.js` and as `x.mjs`: two copies of a module. */
function twoCopies(inputs: readonly string[]): string[] {
  const modules = new Set(inputs.filter((path) => path.includes("node_modules/")));
  return [...modules].filter((path) => path.endsWith(".mjs") && modules.has(path.replace(/\.mjs$/, ".js")));
}

describe("the npm start bundle", () => {
  it("holds one copy of graphql and of every other module that ships two builds", async () => {
    const result = await build({ ...bundleOptions(), metafile: true, write: false, logLevel: "silent" });
    const inputs = Object.keys(result.metafile?.inputs ?? {});
    expect(inputs.some((path) => path.endsWith("node_modules/graphql/error/GraphQLError.js"))).toBe(true);
    expect(twoCopies(inputs)).toEqual([]);
  });

  it("answers a GraphQL syntax error with 400 GRAPHQL_PARSE_FAILED, not a masked 500", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "tl-bundle-"));
    const server = await startServerProcess({ DATA_DIR: dataDir }, [
      process.execPath,
      "src/scripts/start.mjs",
    ]);
    try {
      for (const query of ["{", "query { balance { nope } }"]) {
        const response = await fetch(`${server.url}/graphql`, {
          method: "POST",
          headers: { "content-type": "application/json", accept: "application/graphql-response+json" },
          body: JSON.stringify({ query }),
        });
        const body = (await response.json()) as { errors: { extensions: { code: string } }[] };
        expect(response.status, query).toBe(400);
        expect(body.errors[0]?.extensions.code).toMatch(/GRAPHQL_(PARSE|VALIDATION)_FAILED/);
      }
    } finally {
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
