import type { Access } from "./api.js";

/** What every page of the console is given: who signed in, and the element it draws into. */
export interface PageContext {
  readonly access: Access;
  readonly main: HTMLElement;
}
