import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: {
    // graphql 16 ships CJS (main) and ESM (module). Node loads the CJS build for every dependency, so
    // the tests must too, or GraphQLError would exist twice and `instanceof` checks would fail.
    alias: [{ find: /^graphql$/, replacement: "graphql/index.js" }],
  },
  test: {
    include: ["test/**/*.test.ts"],
    // Builds the server entry TEST_SERVER_ENTRY names (bundle or dist) once; see test/helpers/test-server.ts.
    globalSetup: ["test/helpers/global-setup.ts"],
    // Each file opens its own database (a fresh PGlite, or a fresh PostgreSQL database).
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 30_000,
  },
});
