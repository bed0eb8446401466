import type { BalanceStore } from "./balance-store.js";
import { asLedgerError, type Request, readingOf } from "./balance-sync.js";
import { SPEND_MUTATION } from "./operations.js";
import type { BalanceReading, SpendInput, SpendResult } from "./types.js";

interface SpendPayload extends Omit<SpendResult, "idempotencyKey"> {
  balance: BalanceReading;
}

/**
 * Spends with an idempotency key (the caller's, or a new one reused by every retry, so a retried
 * spend never spends twice). The spend shows at once as pending; the answer confirms it or rolls
 * it back. It resolves in every case, as the app's `if (response.success)` expects: a failure of the
 * client's own (no answer, no token) is `success: false` with an errorCode, and the key to retry with.
 */
export async function spendTokens(
  deps: { request: Request; store: BalanceStore; log: (line: string) => void },
  input: SpendInput,
): Promise<SpendResult> {
  const { store, log } = deps;
  const key = input.idempotencyKey ?? newIdempotencyKey();
  if (Number.isInteger(input.amount) && input.amount > 0) store.addPending(key, input.amount);
  const { amount, description, metadata } = input;
  const variables = { input: { amount, description, metadata, idempotencyKey: key } };
  try {
    const { spendTokens: payload } = await deps.request<{ spendTokens: SpendPayload }>(
      SPEND_MUTATION,
      variables,
    );
    store.answer(key, readingOf(payload.balance), payload.success);
    log(
      payload.success
        ? `Successfully spent ${amount} tokens. New balance: ${payload.newBalance}`
        : `Spend of ${amount} tokens refused (${payload.errorCode}): ${payload.message}`,
    );
    const { balance: _balance, ...result } = payload;
    return { ...result, idempotencyKey: key };
  } catch (caught) {
    store.answer(key, null, false);
    const error = asLedgerError(caught);
    log(`Spend of ${amount} tokens failed (${error.code}): ${error.message}`);
    return {
      success: false,
      newBalance: store.current().reading?.balance ?? 0,
      message: error.message,
      errorCode: error.code,
      retryAfterSeconds: error.retryAfterSeconds,
      transaction: null,
      idempotencyKey: key,
    };
  }
}

/**
 * A random key: randomUUID where it exists, else 16 bytes from getRandomValues (Hermes with a
 * polyfill), else Math.random, which is unique enough for keys scoped to one user.
 */
export function newIdempotencyKey(): string {
  const crypto = (globalThis as { crypto?: { randomUUID?: () => string; getRandomValues?: Random } }).crypto;
  if (crypto?.randomUUID) return crypto.randomUUID();
  const bytes = new Uint8Array(16);
  if (crypto?.getRandomValues) crypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i += 1) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

type Random = (bytes: Uint8Array) => Uint8Array;
