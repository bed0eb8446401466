import { MAX_BALANCE } from "../../db/schema.js";

/** The legacy attribute as a source gives it: its raw value and when it was last set, if known. */
export interface LegacyAttribute {
  readonly raw: unknown;
  readonly updatedAtMs: number | null;
}

export interface ValueRules {
  /** Values above this are refused (never imported). */
  readonly maxPerUser: number;
  /** Values above this are flagged as suspicious. */
  readonly flagAbove: number;
  /** Values above this many times the user's recorded purchases are flagged (when there are any). */
  readonly flagRatio: number;
}

export type Judgement =
  | { readonly verdict: "credit"; readonly tokens: number }
  | { readonly verdict: "refuse"; readonly reason: string }
  | { readonly verdict: "skip"; readonly reason: "no attribute" | "empty" | "zero" };

/**
 * Reads one attribute cell of a Customer Lists export, where a custom attribute's value may be the
 * value itself or an object `{ value, updated_at_ms }`.
 */
export function fromExportCell(cell: unknown): LegacyAttribute {
  if (typeof cell === "object" && cell !== null && !Array.isArray(cell) && "value" in cell) {
    const { value, updated_at_ms: updatedAt } = cell as { value: unknown; updated_at_ms?: unknown };
    return { raw: value, updatedAtMs: typeof updatedAt === "number" ? updatedAt : null };
  }
  return { raw: cell, updatedAtMs: null };
}

/**
 * Judges a legacy value. The old values were written by the app itself, so nothing is guessed: only
 * a whole number of tokens up to the balance cap is credited ("12", 12); "12.5", "-3", "1,000",
 * "1e3" and anything else are refused and listed. The per-user limit and the flags apply to what
 * would be credited (see `limitAndFlags`), once purchases already credited are taken off.
 */
export function judge(attribute: LegacyAttribute | null): Judgement {
  if (!attribute) return { verdict: "skip", reason: "no attribute" };
  const { raw } = attribute;
  if (raw === null || raw === undefined || (typeof raw === "string" && raw.trim() === "")) {
    return { verdict: "skip", reason: "empty" };
  }
  const tokens = wholeNumber(raw);
  if (tokens === null) return { verdict: "refuse", reason: "not a whole number of tokens" };
  if (tokens === 0) return { verdict: "skip", reason: "zero" };
  if (tokens > MAX_BALANCE) return { verdict: "refuse", reason: `above the balance cap of ${MAX_BALANCE}` };
  return { verdict: "credit", tokens };
}

/** The amount to credit against --max-per-user (a refusal reason) and the flags (suspicious but legal). */
export function limitAndFlags(
  tokens: number,
  rules: ValueRules,
  purchased: number,
): { refused: string | null; flags: string[] } {
  if (tokens > rules.maxPerUser) return { refused: `above --max-per-user ${rules.maxPerUser}`, flags: [] };
  const flags: string[] = [];
  if (tokens > rules.flagAbove) flags.push(`above --flag-above ${rules.flagAbove}`);
  if (purchased > 0 && tokens > rules.flagRatio * purchased) {
    flags.push(`over ${rules.flagRatio} times the ${purchased} tokens of recorded purchases`);
  }
  return { refused: null, flags };
}

/** A non-negative whole number, as a number or as decimal digits; null for anything else. */
function wholeNumber(raw: unknown): number | null {
  if (typeof raw === "number") return Number.isSafeInteger(raw) && raw >= 0 ? raw : null;
  if (typeof raw !== "string") return null;
  const text = raw.trim();
  if (!/^\d+$/.test(text)) return null;
  // Past 16 digits a number loses precision; any such value is above the cap anyway.
  return text.length > 16 ? Number.MAX_SAFE_INTEGER : Number(text);
}
