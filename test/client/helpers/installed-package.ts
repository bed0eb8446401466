import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { projectRoot } from "../../helpers/process.js";

const run = promisify(execFile);
export const clientDir = join(projectRoot, "src/client");

/**
 * A fresh app folder with @token-ledger/client installed as `npm pack` ships it: built by tsc into
 * `node_modules/@token-ledger/client/dist` beside its package.json (so imports go through its
 * exports map), with `dependencies` (graphql-ws, react, ...) linked from this repository. The
 * app's own files go in `<root>/app`. The caller removes the folder.
 */
export async function installBuiltClient(dependencies: readonly string[]): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "tl-client-app-"));
  const installed = join(root, "node_modules/@token-ledger/client");
  await run(process.execPath, [
    join(projectRoot, "node_modules/typescript/bin/tsc"),
    "-p",
    clientDir,
    "--outDir",
    join(installed, "dist"),
  ]);
  await cp(join(clientDir, "package.json"), join(installed, "package.json"));
  for (const dependency of dependencies) {
    await symlink(
      join(projectRoot, "node_modules", dependency),
      join(root, "node_modules", dependency),
      "dir",
    );
  }
  await mkdir(join(root, "app"));
  return root;
}
