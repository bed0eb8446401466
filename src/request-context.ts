import { AsyncLocalStorage } from "node:async_hooks";

/**
 * The request id of the work in progress. The logger reads it for every line, so whatever a service
 * logs while serving a request carries that request's id without being handed a logger.
 */
export const requestContext = new AsyncLocalStorage<{ readonly requestId: string }>();
