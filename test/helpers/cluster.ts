import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { chmod, readFile, writeFile } from "node:fs/promises";
import { connect, createServer } from "node:net";
import { join } from "node:path";
import { collectOutput, projectRoot } from "./process.js";
import { toolPath } from "./tools.js";

/**
 * HAProxy and PgBouncer as child processes for the multi-instance tests, each run from the example
 * file in deploy/ with only what a shared test machine needs changed (free ports, a temp folder).
 */

/** The Debian package's binary: on PATH, or in /usr/sbin (not on every user's PATH). */
export function daemonPath(name: "haproxy" | "pgbouncer"): string | undefined {
  return toolPath(name) ?? [join("/usr/sbin", name)].find((path) => existsSync(path));
}

/** A port nobody listens on right now (the OS picks it), for a process that needs a fixed one. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface Helper {
  readonly child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Helper {
  const child = spawn(file, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  const output = collectOutput(child);
  // A test process that ends without its afterAll (a crash, a timeout) takes these along.
  const orphan = () => child.kill("SIGKILL");
  process.once("exit", orphan);
  child.once("exit", () => process.off("exit", orphan));
  return {
    child,
    output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const closed = once(child, "close");
      // Immediate stops: nothing of theirs needs to end gracefully once a test is over.
      child.kill("SIGTERM");
      await closed;
    },
  };
}

/** Resolves once something accepts TCP connections on the port, or throws with the process's output. */
async function waitForPort(port: number, helper: Helper, name: string): Promise<void> {
  const until = Date.now() + 15_000;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    if (helper.child.exitCode !== null || Date.now() > until)
      throw new Error(`${name} did not start:\n${helper.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** `key = value` lines of an ini file replaced by key (in any section); other lines stay as written. */
export function renderIni(text: string, overrides: Record<string, string>): string {
  return text.replace(/^([^\s;=[]+)\s*=.*$/gm, (line, key: string) =>
    key in overrides ? `${key} = ${overrides[key]}` : line,
  );
}

/** PgBouncer 1.18 in transaction mode on `port`, from deploy/pgbouncer/pgbouncer.ini. */
export async function startPgbouncer(dir: string, port: number, serverUrl: string): Promise<Helper> {
  const server = new URL(serverUrl);
  const user = decodeURIComponent(server.username || "postgres");
  const example = await readFile(join(projectRoot, "deploy/pgbouncer/pgbouncer.ini"), "utf8");
  const ini = renderIni(example, {
    "*": `host=${server.hostname} port=${server.port || "5432"}`,
    listen_port: String(port),
    // The test server trusts local connections; PgBouncer still wants the user in its auth file.
    auth_type: "trust",
    auth_file: join(dir, "userlist.txt"),
    admin_users: user,
    stats_users: user,
    logfile: "",
    pidfile: join(dir, "pgbouncer.pid"),
  });
  await writeFile(join(dir, "pgbouncer.ini"), ini);
  await writeFile(join(dir, "userlist.txt"), `"${user}" ""\n`);
  // PgBouncer refuses to run as root: as root, it switches to nobody, who must read and write here.
  const asRoot = process.getuid?.() === 0;
  if (asRoot) await chmod(dir, 0o777);
  const helper = run(daemonPath("pgbouncer") as string, [
    ...(asRoot ? ["-u", "nobody"] : []),
    join(dir, "pgbouncer.ini"),
  ]);
  await waitForPort(port, helper, "pgbouncer");
  return helper;
}

export interface Balancer extends Helper {
  readonly url: string;
  /** Each server's state as HAProxy sees it now: "UP", "DOWN", "UP 1/2"... */
  states(): Promise<Record<string, string>>;
}

/** HAProxy from deploy/haproxy/haproxy.cfg on `port`, balancing over `backends` (host:port). */
export async function startHaproxy(
  dir: string,
  port: number,
  backends: readonly string[],
): Promise<Balancer> {
  const socket = join(dir, "haproxy.sock");
  const env = {
    ...process.env,
    TL_LISTEN: `127.0.0.1:${port}`,
    TL_CHECK_INTER: "300ms",
    TL_STATS_SOCKET: socket,
    ...Object.fromEntries(backends.map((backend, index) => [`TL_APP${index + 1}`, backend])),
  };
  const helper = run(
    daemonPath("haproxy") as string,
    ["-db", "-f", join(projectRoot, "deploy/haproxy/haproxy.cfg")],
    env,
  );
  await waitForPort(port, helper, "haproxy");
  // The admin socket may appear a moment after the listener.
  for (const until = Date.now() + 10_000; !existsSync(socket) && Date.now() < until; )
    await new Promise((resolve) => setTimeout(resolve, 50));
  return { ...helper, url: `http://127.0.0.1:${port}`, states: () => serverStates(socket) };
}

/** `show stat` on HAProxy's admin socket: one CSV line per proxy and server; `status` is a column. */
async function serverStates(socketPath: string): Promise<Record<string, string>> {
  const socket = connect(socketPath);
  await once(socket, "connect");
  socket.end("show stat\n");
  let text = "";
  for await (const chunk of socket) text += String(chunk);
  const [header, ...rows] = text.trim().split("\n");
  const columns = (header ?? "").replace(/^# /, "").split(",");
  const [svname, status] = [columns.indexOf("svname"), columns.indexOf("status")];
  const states: Record<string, string> = {};
  for (const row of rows) {
    const cells = row.split(",");
    const name = cells[svname] ?? "";
    if (name !== "FRONTEND" && name !== "BACKEND") states[name] = cells[status] ?? "";
  }
  return states;
}
