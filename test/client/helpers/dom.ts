import { Window } from "happy-dom";
import { populateGlobal } from "vitest/runtime";

/**
 * Installs happy-dom's DOM on the global object for React and Testing Library, and returns what
 * removes it. Vitest's own happy-dom environment would also swap in happy-dom's fetch, URL, typed
 * arrays and crypto, and resolve modules for the browser (where `ws` is a stub), which breaks the
 * server helpers (jose, the webhook bodies) in the same process. This adds the DOM only and keeps
 * Node's network, binary and crypto globals, as a React Native app keeps its native fetch and
 * WebSocket.
 */
export function installHappyDom(): () => Promise<void> {
  const window = new Window({ url: "http://localhost:3000", settings: { disableErrorCapturing: true } });
  const { originals } = populateGlobal(globalThis, window, { bindFunctions: true });
  const dom = new Set<string | symbol>([
    "DOMException",
    "EventTarget",
    "Event",
    "CustomEvent",
    "MessageEvent",
  ]);
  for (const [key, value] of originals) {
    if (!dom.has(key)) Object.defineProperty(globalThis, key, { value, configurable: true, writable: true });
  }
  return async () => {
    await window.happyDOM.abort();
    window.close();
  };
}
