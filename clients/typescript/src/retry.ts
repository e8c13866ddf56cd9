// When and how long to wait before trying a failed call again. No gRPC here: the client hands in
// one attempt as a function and gets its result, or the error that ended the retries.

import { setTimeout as sleep } from "node:timers/promises";
import { cancelled, RaglineClientError, ResourceExhaustedError } from "./errors.js";

/**
 * How a call that failed with UNAVAILABLE or RESOURCE_EXHAUSTED is retried: exponential backoff
 * with full jitter, the gateway's RetryInfo delay taking the place of the backoff when it sends
 * one, and never past the call's deadline.
 */
export interface RetryPolicy {
  /** Attempts in all, the first included; 1 turns retrying off. */
  maxAttempts: number;
  /** The backoff before the first retry (before jitter). */
  initialBackoffMs: number;
  /** The longest backoff (before jitter); a RetryInfo delay may be longer. */
  maxBackoffMs: number;
  /** Each retry's backoff is this many times the previous one's. */
  backoffMultiplier: number;
}

export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = {
  maxAttempts: 5,
  initialBackoffMs: 200,
  maxBackoffMs: 5_000,
  backoffMultiplier: 2,
};

/** `policy` filled in from the defaults, checked: RangeError for a value that makes no sense. */
export function retryPolicy(policy: Partial<RetryPolicy> | false | undefined): RetryPolicy {
  if (policy === false) {
    return { ...DEFAULT_RETRY_POLICY, maxAttempts: 1 };
  }
  const p = { ...DEFAULT_RETRY_POLICY, ...policy };
  if (!Number.isInteger(p.maxAttempts) || p.maxAttempts < 1) {
    throw new RangeError(
      `retry.maxAttempts must be a whole number of at least 1, not ${p.maxAttempts}`,
    );
  }
  for (const key of ["initialBackoffMs", "maxBackoffMs"] as const) {
    if (!Number.isFinite(p[key]) || p[key] < 0) {
      throw new RangeError(
        `retry.${key} must be a number of milliseconds, 0 or more, not ${p[key]}`,
      );
    }
  }
  if (!Number.isFinite(p.backoffMultiplier) || p.backoffMultiplier < 1) {
    throw new RangeError(`retry.backoffMultiplier must be at least 1, not ${p.backoffMultiplier}`);
  }
  return p;
}

/**
 * The wait before retry number `retry` (1 for the first) after `error`: the gateway's RetryInfo
 * delay when it gave one, otherwise a uniformly random share of the exponential backoff ("full
 * jitter"), so that many clients refused at once do not come back at once.
 */
export function retryDelayMs(
  policy: RetryPolicy,
  retry: number,
  error: RaglineClientError,
  random: () => number = Math.random,
): number {
  if (error instanceof ResourceExhaustedError && error.retryAfterMs !== undefined) {
    return error.retryAfterMs;
  }
  const ceiling = Math.min(
    policy.maxBackoffMs,
    policy.initialBackoffMs * policy.backoffMultiplier ** (retry - 1),
  );
  return random() * ceiling;
}

/**
 * How long to wait before trying again after the `tried`-th attempt failed with `error`, or
 * undefined to give up: the error is an answer (not `retryable`), the attempts are used up, or
 * the wait would end past `deadline` (ms since the epoch).
 */
export function nextRetryDelay(
  policy: RetryPolicy,
  tried: number,
  error: RaglineClientError,
  deadline?: number,
): number | undefined {
  if (!error.retryable || tried >= policy.maxAttempts) {
    return undefined;
  }
  const delay = retryDelayMs(policy, tried, error);
  if (deadline !== undefined && Date.now() + delay >= deadline) {
    return undefined;
  }
  return delay;
}

/** When retrying gives up: the deadline (ms since the epoch, as Date.now()) and an abort signal. */
export interface RetryLimits {
  deadline?: number;
  signal?: AbortSignal;
}

/**
 * The result of `attempt`, tried again while it rejects with a retryable RaglineClientError and
 * the policy and `limits` allow. A wait that would end past the deadline is not begun: the last
 * error is thrown at once instead. Any other error is thrown as it is.
 */
export async function withRetries<T>(
  policy: RetryPolicy,
  limits: RetryLimits,
  attempt: () => Promise<T>,
): Promise<T> {
  for (let tried = 1; ; tried++) {
    try {
      return await attempt();
    } catch (err) {
      const delay =
        err instanceof RaglineClientError
          ? nextRetryDelay(policy, tried, err, limits.deadline)
          : undefined;
      if (delay === undefined) {
        throw err;
      }
      await pause(delay, limits.signal);
    }
  }
}

/** Waits `ms`; rejects with a CancelledError if `signal` fires first. */
export async function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  try {
    await sleep(ms, undefined, { signal });
  } catch (err) {
    throw signal?.aborted ? cancelled(signal) : err;
  }
}
