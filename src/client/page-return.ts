interface EventSource {
  addEventListener?(type: string, listener: (event: { type: string }) => void): void;
  removeEventListener?(type: string, listener: (event: { type: string }) => void): void;
  visibilityState?: string;
}

/**
 * Tells when a browser page comes back (`online`, window `focus`, `visibilitychange` to visible),
 * so a live connection waiting out its backoff reconnects at once. The listeners are attached
 * through the global object at call time, and only where it has them: React Native and Node have
 * no such events (an app calls `refresh()` instead, from AppState). Returns what removes them.
 */
export function listenForPageReturn(wake: (why: string) => void): () => void {
  const page = globalThis as EventSource & { document?: EventSource };
  const document = page.document;
  const listeners: [EventSource | undefined, string][] = [
    [page, "online"],
    [page, "focus"],
    [document, "visibilitychange"],
  ];
  const listener = (event: { type: string }) => {
    if (document?.visibilityState !== "hidden") wake(event.type);
  };
  for (const [target, type] of listeners) target?.addEventListener?.(type, listener);
  return () => {
    for (const [target, type] of listeners) target?.removeEventListener?.(type, listener);
  };
}
