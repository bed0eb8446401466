import type { BalanceStore } from "./balance-store.js";
import { asLedgerError, type Request, readingOf } from "./balance-sync.js";
import { CAPTURE_MUTATION, RELEASE_MUTATION, RESERVE_MUTATION } from "./operations.js";
import { newIdempotencyKey } from "./spend.js";
import type {
  BalanceReading,
  CaptureInput,
  CaptureResult,
  Hold,
  HoldErrorCode,
  HoldJob,
  HoldResult,
  ReserveInput,
  ReserveResult,
  WithHoldOptions,
  WithHoldResult,
} from "./types.js";

/**
 * Holds: reserve tokens before a job whose price is known only after it, capture what it used,
 * release on failure. Like spendTokens, each call resolves in every case: a refusal or a failure of
 * the client's own (no answer: the outcome is unknown, retry) is `success: false` with an errorCode.
 * Each answer's balance (with held and available) goes into the store.
 */

interface Deps {
  request: Request;
  store: BalanceStore;
  log: (line: string) => void;
}

type Answer<Extra> = Omit<HoldResult, "retryAfterSeconds"> &
  Extra & { retryAfterSeconds?: number | null; balance: BalanceReading };

export async function reserveTokens(deps: Deps, input: ReserveInput): Promise<ReserveResult> {
  const idempotencyKey = input.idempotencyKey ?? newIdempotencyKey();
  const variables = { input: { ...input, idempotencyKey } };
  const result = await call<{ reserveTokens: Answer<object> }, object>(
    deps,
    RESERVE_MUTATION,
    variables,
    `Reserve of ${input.amount} tokens`,
    {},
  );
  return { ...result, idempotencyKey };
}

export function captureHold(deps: Deps, holdId: string, input: CaptureInput): Promise<CaptureResult> {
  return call<{ captureHold: Answer<Pick<CaptureResult, "transaction" | "shortfall">> }, object>(
    deps,
    CAPTURE_MUTATION,
    { input: { ...input, holdId } },
    `Capture of ${input.amount} tokens of hold ${holdId}`,
    { transaction: null, shortfall: null },
  ) as Promise<CaptureResult>;
}

export function releaseHold(deps: Deps, holdId: string): Promise<HoldResult> {
  return call<{ releaseHold: Answer<object> }, object>(
    deps,
    RELEASE_MUTATION,
    { input: { holdId } },
    `Release of hold ${holdId}`,
    {},
  );
}

/** Thrown by withHold when the hold could not be made or captured; `result` is the job's, if it ran. */
export class HoldError extends Error {
  override readonly name = "HoldError";
  constructor(
    readonly code: HoldErrorCode,
    message: string,
    /** The hold, when there is one: left as it is, so it expires at its TTL unless captured or released. */
    readonly hold: Hold | null,
    /** The job's own result when the job ran and only the capture failed. */
    readonly result?: unknown,
  ) {
    super(message);
  }
}

/**
 * Reserve, run, capture what the job reports, release when it throws. A reserve or a capture that got
 * no answer is sent once more with the same key or amount (both replay rather than doubling). When
 * the capture still fails after the job ran, nothing was spent: the hold stays until its TTL, when
 * its tokens go back, and a HoldError carries the job's result and the hold, so the app can capture
 * it again itself (the same amount replays) or accept the job as free.
 */
export async function withHold<T>(
  client: {
    reserve(input: ReserveInput): Promise<ReserveResult>;
    capture(holdId: string, input: CaptureInput): Promise<CaptureResult>;
    release(holdId: string): Promise<HoldResult>;
  },
  amount: number,
  job: HoldJob<T>,
  options: WithHoldOptions = {},
): Promise<WithHoldResult<T>> {
  const { captureDescription, overage, ...reserveOptions } = options;
  const input = { ...reserveOptions, amount, idempotencyKey: options.idempotencyKey ?? newIdempotencyKey() };
  const reserved = await again(() => client.reserve(input));
  if (!reserved.success || !reserved.hold) {
    throw new HoldError(reserved.errorCode ?? "UNEXPECTED", reserved.message, reserved.hold);
  }
  const hold = reserved.hold;
  let ran: { used: number; result: T };
  try {
    ran = await job(hold);
  } catch (error) {
    // A release that fails leaves the hold to expire at its TTL: the tokens come back either way.
    await client.release(hold.id).catch(() => undefined);
    throw error;
  }
  const description = captureDescription ?? options.description;
  const capture = await again(() =>
    client.capture(hold.id, {
      amount: ran.used,
      ...(overage ? { overage } : {}),
      ...(description ? { description } : {}),
    }),
  );
  if (!capture.success || !capture.hold) {
    throw new HoldError(
      capture.errorCode ?? "UNEXPECTED",
      `The job ran but its capture failed: ${capture.message}`,
      capture.hold ?? hold,
      ran.result,
    );
  }
  return { result: ran.result, hold: capture.hold, used: ran.used, capture };
}

/** Sends once more when no answer came (the server replays, so the retry cannot double anything). */
async function again<R extends HoldResult>(send: () => Promise<R>): Promise<R> {
  const first = await send();
  return first.errorCode === "NETWORK_ERROR" ? send() : first;
}

async function call<Data extends Record<string, Answer<object>>, Extra>(
  deps: Deps,
  query: string,
  variables: Record<string, unknown>,
  what: string,
  failed: Extra,
): Promise<HoldResult & Extra> {
  try {
    const data = await deps.request<Data>(query, variables);
    const { balance, ...payload } = Object.values(data)[0] as Answer<object>;
    deps.store.answer(`hold-answer:${balance.version}`, readingOf(balance), false);
    deps.log(
      payload.success
        ? `${what}: ${payload.message}`
        : `${what} refused (${payload.errorCode}): ${payload.message}`,
    );
    return { ...failed, retryAfterSeconds: null, ...payload } as HoldResult & Extra;
  } catch (caught) {
    const error = asLedgerError(caught);
    deps.log(`${what} failed (${error.code}): ${error.message}`);
    return {
      ...failed,
      success: false,
      message: error.message,
      errorCode: error.code,
      hold: null,
      replayed: false,
      retryAfterSeconds: error.retryAfterSeconds,
    };
  }
}
