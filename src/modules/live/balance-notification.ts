import type { Logger } from "pino";
import { z } from "zod";
import { ENTRY_KINDS } from "../../db/schema.js";
import { HOLD_CHANGE_KINDS, type HoldChangeKind } from "./balance-change.js";

const isHoldChangeKind = (kind: string | undefined): kind is HoldChangeKind =>
  HOLD_CHANGE_KINDS.includes(kind as HoldChangeKind);

/**
 * One change of the ledger's NOTIFY payload (ledger.events.ts, written by the money function), checked
 * before anyone trusts it: the payload crosses a process boundary, and a malformed one must cost one
 * event (the client sees a version gap and re-reads), never the listener.
 */
const notifiedChangeSchema = z
  .object({
    userId: z.string().min(1),
    balance: z.number().int().nonnegative(),
    delta: z.number().int(),
    version: z.number().int().positive(),
    // Null for a hold change that wrote no entry (issue 19).
    entryId: z
      .union([z.number().int().positive(), z.string().regex(/^[1-9]\d{0,15}$/)])
      .transform(Number)
      .nullable(),
    at: z
      .string()
      .transform((text) => new Date(text))
      .refine((date) => !Number.isNaN(date.getTime()), "not a time"),
    // Added with lots (issue 18); a payload of an older money function has neither.
    kind: z.enum([...ENTRY_KINDS, ...HOLD_CHANGE_KINDS]).optional(),
    held: z.number().int().nonnegative().default(0),
    // Added with holds (issue 19): the hold a reserve, capture, release or expiry was about.
    holdId: z
      .union([z.number().int().positive(), z.string().regex(/^[1-9]\d{0,17}$/)])
      .transform(String)
      .nullish()
      .transform((id) => id ?? null),
  })
  // A change without an entry is a hold change, and names its kind and hold.
  .refine((change) => change.entryId !== null || (isHoldChangeKind(change.kind) && change.holdId !== null), {
    message: "a change without an entry must be a hold change with its kind and holdId",
  });

export type NotifiedChange = z.output<typeof notifiedChangeSchema>;

/**
 * The changes of one notification (a JSON array, in commit order). A payload that is not an array is
 * dropped whole; an element that does not fit is dropped alone. Both are logged.
 */
export function parseNotification(payload: string, logger: Logger): NotifiedChange[] {
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch {
    logger.warn({ bytes: payload.length }, "dropped a balance notification that is not JSON");
    return [];
  }
  if (!Array.isArray(value)) {
    logger.warn({ bytes: payload.length }, "dropped a balance notification that is not an array");
    return [];
  }
  const changes: NotifiedChange[] = [];
  for (const element of value) {
    const parsed = notifiedChangeSchema.safeParse(element);
    if (parsed.success) changes.push(parsed.data);
    else {
      const problems = parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`);
      logger.warn({ problems }, "dropped a malformed change of a balance notification");
    }
  }
  return changes;
}
