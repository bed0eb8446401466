import { ensureBuilt, serverEntry } from "./build-entry.js";

/** Builds the entry the HTTP-facing tests run (TEST_SERVER_ENTRY) once, before any file starts it. */
export default async function setup(): Promise<void> {
  await ensureBuilt(serverEntry);
}
