import { createHash, timingSafeEqual } from "node:crypto";

/** Equal in constant time: both sides are hashed first, so not even their lengths leak. */
export function constantTimeEqual(a: string, b: string): boolean {
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(a), digest(b));
}
