/**
 * The database-stall figures, for a before/after comparison: starts a server process (from `root`,
 * another checkout for "before") on a new PostgreSQL database behind a proxy, freezes the proxy for
 * `pauseMs` under `clients` retrying clients, and prints what measureStall measured.
 *
 *   npx tsx test/http/scripts/stall.ts [root=.] [pauseMs=15000] [clients=32]
 * Needs TEST_DATABASE_URL (an admin URL, as for the tests).
 */

import { spawn } from "node:child_process";
import { signDevToken } from "../../../src/auth/jwt.js";
import { JWT_SECRET, newUserId } from "../../helpers/app.js";
import { openTestDatabase } from "../../helpers/database.js";
import { collectOutput, projectRoot, serverEnv } from "../../helpers/process.js";
import { measureStall } from "../../helpers/stall.js";
import { OutageProxy } from "../../helpers/tcp-proxy.js";

const [root = projectRoot, pauseMs = "15000", clients = "32"] = process.argv.slice(2);
const database = await openTestDatabase();
const target = new URL(database.url as string);
const proxy = new OutageProxy({ host: target.hostname, port: Number(target.port || 5432) });
await proxy.open();
const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
  cwd: root,
  env: serverEnv({
    DATABASE_URL: proxy.urlFor(database.url as string),
    DATABASE_POOL_SIZE: "20",
    DATABASE_DEADLINE_MS: "4000",
  }),
  stdio: ["ignore", "pipe", "pipe"],
});
const output = collectOutput(child);
let port: string | undefined;
while (!port) {
  port = /"port":(\d+)/.exec(output())?.[1];
  if (child.exitCode !== null) throw new Error(output());
  await new Promise((resolve) => setTimeout(resolve, 50));
}
const url = `http://127.0.0.1:${port}`;
const userId = newUserId();
const admin = await signDevToken({ secret: JWT_SECRET, userId: "admin", admin: true, expiresIn: "1h" });
await fetch(`${url}/graphql`, {
  method: "POST",
  headers: { "content-type": "application/json", authorization: `Bearer ${admin}` },
  body: JSON.stringify({
    query: `mutation { grantTokens(input: { userId: "${userId}", amount: 1000000, reason: "setup" }) { success } }`,
  }),
});
const figures = await measureStall({
  url,
  proxy,
  userId,
  deadlineMs: 4_000,
  pauseMs: Number(pauseMs),
  clients: Number(clients),
});
const { attempts, acknowledged, ready, ...summary } = figures;
const [entries] = (await database.handle.query<{ n: number }>(
  "SELECT count(*)::int AS n FROM token_transactions WHERE user_id = $1 AND kind = 'SPEND'",
  [userId],
)) as { n: number }[];
const lost = acknowledged.length - Math.min(acknowledged.length, entries?.n ?? 0);
console.log(
  JSON.stringify({
    root,
    ...summary,
    readyMs: ready.map((probe) => `${probe.status}:${probe.ms}`),
    acknowledged: acknowledged.length,
    spendEntries: entries?.n,
    lostAtMost: lost,
  }),
);
child.kill("SIGTERM");
await proxy.cut();
await database.close();
process.exit(0);
