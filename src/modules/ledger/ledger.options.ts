import type { Logger } from "pino";
import type { Executor } from "../../db/client.js";
import type { ChangeRequest } from "./ledger.statements.js";

/** How a ledger operation runs (ledger.service.ts). */
export interface WriteOptions {
  /** The request's logger, so the ledger's lines carry the request id. */
  readonly log?: Logger | undefined;
  /**
   * Run inside the caller's transaction (the webhook's). By default an operation joins the group
   * commit: it is written with whatever else arrived meanwhile, and resolves once that has committed.
   */
  readonly executor?: Executor | undefined;
}

export interface SpendOptions extends WriteOptions {
  /** Count the spend against this fixed-window limit in the same statement (`rate_limited` past it). */
  readonly rateLimit?: ChangeRequest["rateLimit"];
}
