/** Resolves after `ms`; `cancel` ends the wait early (and lets a Node process exit meanwhile). */
export function delay(ms: number): Promise<void> & { cancel(): void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let done = () => {};
  const waiting = new Promise<void>((resolve) => {
    done = resolve;
    timer = setTimeout(resolve, ms);
  });
  return Object.assign(waiting, {
    cancel() {
      clearTimeout(timer);
      done();
    },
  });
}
