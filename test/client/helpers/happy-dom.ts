import { afterAll } from "vitest";
import { installHappyDom } from "./dom.js";

/** Imported first by a test file, so the DOM is there before Testing Library looks for it. */
afterAll(installHappyDom());
