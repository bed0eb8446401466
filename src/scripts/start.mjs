// `npm start`: runs the service from one esbuild bundle of its sources and their pure-JavaScript
// dependencies. Loading the sources through tsx's loader hooks, or the dependencies as the thousand
// small ES modules they ship as, made a start take 2.5 to 4 s; from the bundle it takes about 1.5 s
// (a new embedded data folder included). The bundle is made by `npm install` and again whenever a
// file under src/, or the lock file, is newer than it (about a second), so it is never stale.
// PGlite (WebAssembly beside its code), GraphiQL's page and ioredis stay external, loaded as usual.
// `npm run dev` still watches the sources with tsx; production runs the tsc build (`npm run build`).
import { mkdir, readdir, rename, stat, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const bundle = join(root, "node_modules", ".cache", "token-ledger", "main.mjs");

/** The newest modification time among the sources and the lock file. */
async function newestSource() {
  const files = await readdir(join(root, "src"), { recursive: true });
  const times = await Promise.all(
    [...files.map((file) => join(root, "src", file)), join(root, "package-lock.json")].map((path) =>
      stat(path).then(
        (s) => s.mtimeMs,
        () => 0,
      ),
    ),
  );
  return Math.max(...times);
}

/**
 * Packages that ship a CommonJS and an ES module build of themselves (graphql 16: `main` and `module`)
 * would be bundled twice, once for the dependencies that require() them and once for those that
 * import them, and a class of one copy is not an `instanceof` of the other: yoga then masked every
 * GraphQLError made by the other copy as a 500. Node itself loads `main` for both kinds of importer,
 * so the bundle does too.
 */
const ONE_COPY = ["graphql"];

const oneCopyPlugin = {
  name: "one-copy",
  setup(build) {
    const filter = new RegExp(`^(${ONE_COPY.join("|")})$`);
    build.onResolve({ filter }, (args) => ({
      path: createRequire(join(root, "package.json")).resolve(args.path),
    }));
  },
};

/** esbuild's options for the start bundle (tests build it with these to inspect what it holds). */
export function bundleOptions() {
  return {
    entryPoints: [join(root, "src", "main.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    external: ["@electric-sql/pglite", "@graphql-yoga/render-graphiql", "ioredis", "esbuild"],
    // Bundled CommonJS dependencies call require(): give the bundle a real one.
    banner: {
      js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
    },
    mainFields: ["module", "main"],
    plugins: [oneCopyPlugin],
    sourcemap: "linked",
    outfile: bundle,
    write: false,
    logLevel: "warning",
  };
}

export async function buildBundle() {
  const { build } = await import("esbuild");
  const result = await build(bundleOptions());
  // Each file is written beside and renamed into place, so two starts at once never run half a file.
  await mkdir(dirname(bundle), { recursive: true });
  // The source map goes first, so the code it describes is never newer than it.
  const files = [...result.outputFiles].sort(
    (a, b) => Number(b.path.endsWith(".map")) - Number(a.path.endsWith(".map")),
  );
  // The operator console's browser app goes beside the bundle, where the server looks for it.
  const { buildConsoleScript, CONSOLE_SCRIPT } = await import("../console/web/bundle.mjs");
  const script = { path: join(dirname(bundle), CONSOLE_SCRIPT), contents: await buildConsoleScript() };
  for (const file of [script, ...files]) {
    const temporary = `${file.path}.${process.pid}`;
    await writeFile(temporary, file.contents);
    await rename(temporary, file.path);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const built = await stat(bundle).then(
    (s) => s.mtimeMs,
    () => 0,
  );
  if (built < (await newestSource())) await buildBundle();
  await import(pathToFileURL(bundle).href);
}
