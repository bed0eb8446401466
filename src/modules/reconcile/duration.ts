const UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** An age such as `90m`, `3h` or `2d` in milliseconds (`0` is none); null when it is not one. */
export function parseDuration(text: string): number | null {
  const match = /^(\d+(?:\.\d+)?)\s*([smhd])?$/.exec(text.trim());
  if (!match) return null;
  const amount = Number(match[1]);
  if (!match[2]) return amount === 0 ? 0 : null;
  return Math.round(amount * (UNITS[match[2]] as number));
}
