import { afterAll, beforeAll } from "vitest";

/**
 * Starts something before the file's tests and closes it after them; the returned object forwards
 * to it once started, so a test file can hold it from the top.
 */
export function useStarted<T extends { close(): Promise<void> }>(name: string, start: () => Promise<T>): T {
  let instance: T | undefined;
  beforeAll(async () => {
    instance = await start();
  });
  afterAll(async () => {
    await instance?.close();
  });
  return new Proxy({} as T, {
    get(_target, key) {
      if (!instance) throw new Error(`${name} is used before beforeAll started it`);
      return Reflect.get(instance, key);
    },
  });
}
