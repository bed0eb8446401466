/**
 * True when PostgreSQL can store the text as given: no NUL character (text columns refuse it) and no
 * lone surrogate (it has no UTF-8 form, and jsonb refuses its escape). Every door checks its strings
 * with this, so unstorable input is a 400 that names the field rather than a failed statement.
 */
export function isStorableText(text: string): boolean {
  return !text.includes("\u0000") && text.isWellFormed();
}

export const UNSTORABLE_TEXT_MESSAGE = "must not contain NUL characters or unpaired surrogates";
