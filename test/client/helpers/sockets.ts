import WebSocket from "ws";

interface Message {
  type?: string;
  payload?: { data?: { balanceChanged?: { version?: number; transaction?: { kind?: string } | null } } };
}

/** What a tapped WebSocket class saw, across every socket it made. */
export interface SocketTap {
  /** The WebSocket class to hand the client. */
  readonly WebSocket: unknown;
  /** How many sockets were opened. */
  opened(): number;
  /** The close codes of closed sockets, in order. */
  readonly closeCodes: number[];
  /** The authorization sent in each connection_init. */
  readonly authorizations: (string | undefined)[];
  /** Messages the tap withheld from the client. */
  readonly dropped: Message[];
  /** Messages the tap let through, in order. */
  readonly delivered: Message[];
}

/**
 * A `ws` WebSocket that records what happens and can withhold chosen messages from the client (to
 * make it miss an event) or hold every message back for a while (so an HTTP answer wins the race).
 */
export function tapWebSocket(
  options: { drop?: (message: Message) => boolean; delayMs?: number } = {},
): SocketTap {
  let opened = 0;
  const closeCodes: number[] = [];
  const authorizations: (string | undefined)[] = [];
  const dropped: Message[] = [];
  const delivered: Message[] = [];

  const deliver = (handler: (event: WebSocket.MessageEvent) => void, event: WebSocket.MessageEvent) => {
    const message = JSON.parse(String(event.data)) as Message;
    if (options.drop?.(message)) {
      dropped.push(message);
      return;
    }
    delivered.push(message);
    if (options.delayMs) setTimeout(() => handler(event), options.delayMs);
    else handler(event);
  };
  // graphql-ws listens through `onmessage`, an accessor of ws's prototype: wrap what it sets.
  const onmessage = Object.getOwnPropertyDescriptor(WebSocket.prototype, "onmessage");

  class TappedWebSocket extends WebSocket {
    constructor(address: string, protocols?: string | string[]) {
      super(address, protocols);
      opened += 1;
      this.addEventListener("close", (event) => closeCodes.push(event.code));
      Object.defineProperty(this, "onmessage", {
        get: () => onmessage?.get?.call(this),
        set: (handler: ((event: WebSocket.MessageEvent) => void) | null) =>
          onmessage?.set?.call(this, handler && ((event: WebSocket.MessageEvent) => deliver(handler, event))),
      });
    }

    override send(data: unknown, ...rest: unknown[]): void {
      const message = JSON.parse(String(data)) as { type?: string; payload?: { authorization?: string } };
      if (message.type === "connection_init") authorizations.push(message.payload?.authorization);
      (super.send as (...args: unknown[]) => void)(data, ...rest);
    }
  }

  return {
    WebSocket: TappedWebSocket,
    opened: () => opened,
    closeCodes,
    authorizations,
    dropped,
    delivered,
  };
}

/** The balanceChanged version a graphql-ws `next` message carries, if it is one. */
export function versionOf(message: Message): number | undefined {
  return message.type === "next" ? message.payload?.data?.balanceChanged?.version : undefined;
}

/** The transaction kind a balanceChanged message carries, if any. */
export function kindOf(message: Message): string | undefined {
  return message.type === "next" ? message.payload?.data?.balanceChanged?.transaction?.kind : undefined;
}
