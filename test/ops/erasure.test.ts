import { execFile } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { eq, sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { type DatabaseHandle, openDatabase, queryRows } from "../../src/db/client.js";
import { migrate } from "../../src/db/migrate.js";
import { revenuecatEventsTable } from "../../src/db/schema.js";
import { newUserId, startTestApp } from "../helpers/app.js";
import { driverName, openTestDatabase, serverUrl } from "../helpers/database.js";
import { projectRoot } from "../helpers/process.js";
import { deliver, fixture } from "../helpers/revenuecat.js";

const run = promisify(execFile);

/** `npm run erase-user -- …` as npm runs it: through the command runner, in a process of its own. */
async function eraseUser(args: string[], env: Record<string, string | undefined>) {
  const { stdout } = await run(process.execPath, ["src/scripts/run.mjs", "erase-user", ...args], {
    cwd: projectRoot,
    env: { ...process.env, NODE_ENV: "test", LOG_LEVEL: "silent", ...env },
  });
  return JSON.parse(stdout) as Record<string, unknown>;
}

interface Snapshot {
  readonly bodies: Map<string, string>;
  readonly entries: { amount: number; description: string | null; metadata: unknown }[];
  readonly counters: string[];
}

async function snapshot(handle: DatabaseHandle, userId: string, eventIds: string[]): Promise<Snapshot> {
  const bodies = new Map<string, string>();
  for (const eventId of eventIds) {
    const [row] = await handle.db
      .select({ rawBody: revenuecatEventsTable.rawBody })
      .from(revenuecatEventsTable)
      .where(eq(revenuecatEventsTable.eventId, eventId));
    bodies.set(eventId, row?.rawBody ?? "");
  }
  const entries = await queryRows<Snapshot["entries"][number]>(
    handle.db,
    sql`SELECT amount, description, metadata FROM token_transactions WHERE user_id = ${userId} ORDER BY id`,
  );
  const counters = await queryRows<{ key: string }>(
    handle.db,
    sql`SELECT key FROM rate_limits WHERE key = ${`spend:${userId}`}`,
  );
  return { bodies, entries, counters: counters.map((row) => row.key) };
}

describe(`erasing a user on ${driverName}`, () => {
  it("npm run erase-user reduces every stored body naming the user, deletes their counters, keeps the ledger", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "tl-erase-"));
    const testDb = serverUrl ? await openTestDatabase() : undefined;
    const open = async () => testDb?.handle ?? (await openDatabase({ dataDir }));
    const handle = await open();
    if (!testDb) await migrate(handle);
    const app = await startTestApp(
      { PURGE_INTERVAL_MINUTES: "0" },
      { handle, url: testDb?.url, close: async () => {} },
    );

    const userId = newUserId("erase");
    const other = newUserId("keep");
    const purchase = fixture("NON_RENEWING_PURCHASE__rc-docs", {
      app_user_id: userId,
      product_id: "token_pack_small",
    });
    // A transfer between two other app user ids names the user only inside the body.
    const transfer = fixture("TRANSFER__rc-docs", { transferred_from: [userId], transferred_to: [other] });
    const othersPurchase = fixture("NON_RENEWING_PURCHASE__rc-docs", { app_user_id: other });
    for (const body of [purchase, transfer, othersPurchase])
      expect((await deliver(app.url, body)).status).toBe(200);
    const spend = await fetch(`${app.url}/api/v1/tokens/spend`, {
      method: "POST",
      headers: { authorization: `Bearer ${await app.token(userId)}`, "content-type": "application/json" },
      body: JSON.stringify({ amount: 5, description: "hint", metadata: { level: 3 } }),
    });
    expect(spend.status).toBe(200);
    const eventIds = [purchase.event.id, transfer.event.id, othersPurchase.event.id];
    const before = await snapshot(handle, userId, eventIds);
    expect(before.bodies.get(purchase.event.id)).toContain("firstlast@gmail.com");
    expect(before.counters).toEqual([`spend:${userId}`]);
    await app.close();
    if (!testDb) await handle.close();

    const env = { DATABASE_URL: testDb?.url, DATA_DIR: dataDir };
    const dryRun = await eraseUser([userId, "--dry-run"], env);
    expect(dryRun).toMatchObject({ dryRun: true, webhookBodiesReduced: 2 });
    const reopened = await open();
    expect(await snapshot(reopened, userId, eventIds)).toEqual(before);
    if (!testDb) await reopened.close();

    const report = await eraseUser([userId], env);
    expect(report).toEqual({
      userId,
      dryRun: false,
      webhookBodiesReduced: 2,
      rateLimitCountersDeleted: 1,
      ledger: { entries: 2, entriesWithWrittenText: 1, balance: 95 },
    });

    const check = await open();
    try {
      const after = await snapshot(check, userId, eventIds);
      for (const eventId of [purchase.event.id, transfer.event.id]) {
        const body = after.bodies.get(eventId) ?? "";
        expect(body).not.toContain("firstlast@gmail.com");
        expect(JSON.parse(body)).toMatchObject({ reduced_for: "erasure", event: { id: eventId } });
      }
      expect(after.bodies.get(purchase.event.id)).not.toContain("subscriber_attributes");
      // The transfer's parties are not fields the service acts on: gone with the rest.
      expect(after.bodies.get(transfer.event.id)).not.toContain(userId);
      // Someone else's delivery is untouched; the ledger is exactly as it was (it is never rewritten).
      expect(after.bodies.get(othersPurchase.event.id)).toBe(before.bodies.get(othersPurchase.event.id));
      expect(after.entries).toEqual(before.entries);
      expect(after.counters).toEqual([]);
      // A second erasure finds nothing left to erase.
      if (!testDb) await check.close();
      expect(await eraseUser([userId], env)).toMatchObject({
        webhookBodiesReduced: 0,
        rateLimitCountersDeleted: 0,
      });
    } finally {
      if (testDb) await testDb.close();
    }
  }, 240_000);
});
