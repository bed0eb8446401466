import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { join } from "node:path";

/**
 * Loaded into a benchmarked server with `--import` (BENCH_PROFILE=<folder>): SIGUSR2 starts a CPU
 * profile and the next SIGUSR2 writes it to the folder, so a profile covers the measured load only,
 * not start-up or warm-up. Never part of the service itself.
 */
const folder = process.env.BENCH_PROFILE as string;
const session = new Session();
session.connect();
let running = false;
let count = 0;

process.on("SIGUSR2", () => {
  if (!running) {
    running = true;
    session.post("Profiler.enable", () => session.post("Profiler.start"));
    return;
  }
  running = false;
  session.post("Profiler.stop", (error, result) => {
    if (error) return;
    count += 1;
    writeFileSync(join(folder, `profile-${process.pid}-${count}.cpuprofile`), JSON.stringify(result.profile));
  });
});
