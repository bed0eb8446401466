import { createHash, timingSafeEqual } from "node:crypto";

/** Equal in constant time: both sides are hashed first, so not even their lengths leak. */
export function constantTimeEqual(a: string, b: string): boolean {
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(a), digest(b));
}

/**
 * Whether `given` equals any of the configured secrets (the current one and, while rotating, the
 * previous one). Every secret is compared, so timing does not say which one matched.
 */
export function equalsAnySecret(given: string, secrets: readonly (string | undefined)[]): boolean {
  let matched = false;
  for (const secret of secrets) {
    if (secret !== undefined && constantTimeEqual(given, secret)) matched = true;
  }
  return matched;
}
