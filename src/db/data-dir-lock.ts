import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import lockfile from "proper-lockfile";

/** Who holds the embedded database, written beside the lock so a second opener can say so. */
export interface DataDirHolder {
  readonly pid: number;
  readonly startedAt: string;
  readonly command: string;
  /** Set once a server listens, so maintenance commands can reach it. */
  readonly url?: string;
}

/** The embedded database in `dataDir` is open in another process. */
export class DataDirInUseError extends Error {
  override readonly name = "DataDirInUseError";
  constructor(
    readonly dataDir: string,
    readonly holder: DataDirHolder | null,
  ) {
    const who = holder
      ? `process ${holder.pid} (${holder.url ? `serving ${holder.url}` : holder.command}, since ${holder.startedAt})`
      : "another process";
    super(
      `DATA_DIR ${dataDir} is in use by ${who}. The embedded database can be opened by one process ` +
        "only: stop that process, set DATA_DIR to another folder, or set DATABASE_URL to use PostgreSQL. " +
        "Maintenance commands (npm run webhooks:reprocess) go through a running server by themselves.",
    );
  }
}

export interface DataDirLock {
  /** Records the URL the server listens on, for maintenance commands to find it. */
  advertise(url: string): Promise<void>;
  release(): Promise<void>;
}

/**
 * The lock's freshness window. proper-lockfile renews the lock's mtime every STALE_MS / 3; a lock not
 * renewed for STALE_MS belongs to a process that died on another machine or hung. On this machine a
 * dead holder is recognised at once by its pid, so a restart after a crash never waits.
 */
const STALE_MS = 60_000;

const lockPath = (dataDir: string) => join(dataDir, "pglite.lock");
const holderPath = (dataDir: string) => join(dataDir, "pglite.holder.json");

/**
 * Takes the exclusive lock on DATA_DIR that every opener of the embedded database must hold, or
 * throws DataDirInUseError naming the holder. `onCompromised` runs if the lock is lost while held
 * (its renewal failed): the caller must stop writing at once.
 */
export async function lockDataDir(
  dataDir: string,
  onCompromised: (error: Error) => void,
): Promise<DataDirLock> {
  await mkdir(dataDir, { recursive: true });
  const acquire = () =>
    lockfile.lock(dataDir, {
      lockfilePath: lockPath(dataDir),
      realpath: false,
      stale: STALE_MS,
      update: STALE_MS / 3,
      retries: 0,
      onCompromised,
    });
  let release: () => Promise<void>;
  try {
    release = await acquire();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ELOCKED") throw error;
    const holder = await readHolder(dataDir);
    if (!holder || isAlive(holder.pid)) throw new DataDirInUseError(dataDir, holder);
    // The holder died without releasing (SIGKILL, power loss): its lock is stale.
    await rm(lockPath(dataDir), { recursive: true, force: true });
    release = await acquire();
  }
  let holder: DataDirHolder = {
    pid: process.pid,
    startedAt: new Date().toISOString(),
    command: process.argv.slice(1).join(" "),
  };
  await writeHolder(dataDir, holder);
  return {
    async advertise(url) {
      holder = { ...holder, url };
      await writeHolder(dataDir, holder);
    },
    async release() {
      await rm(holderPath(dataDir), { force: true });
      await release();
    },
  };
}

/** Who holds DATA_DIR now, or null when nobody does. */
export async function dataDirHolder(dataDir: string): Promise<DataDirHolder | null> {
  const locked = await lockfile.check(dataDir, {
    lockfilePath: lockPath(dataDir),
    realpath: false,
    stale: STALE_MS,
  });
  if (!locked) return null;
  const holder = await readHolder(dataDir);
  return holder && isAlive(holder.pid) ? holder : null;
}

async function readHolder(dataDir: string): Promise<DataDirHolder | null> {
  try {
    return JSON.parse(await readFile(holderPath(dataDir), "utf8")) as DataDirHolder;
  } catch {
    return null;
  }
}

async function writeHolder(dataDir: string, holder: DataDirHolder): Promise<void> {
  await writeFile(holderPath(dataDir), `${JSON.stringify(holder, null, 2)}\n`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
