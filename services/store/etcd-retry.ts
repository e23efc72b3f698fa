/**
 * The etcd backend's one retry loop. The etcd3 client's own retry and
 * circuit-breaker policies are disabled: only the caller knows whether an
 * attempt is safe to repeat.
 */
import { AmalgamError } from '../core/errors.ts';
import { definiteError, noQuorum } from './etcd-errors.ts';

/** One attempt of a call, to finish by `deadline`. */
export type Attempt<T> = (deadline: Date) => Promise<T>;

export interface RetryPolicy {
  /** Deadline of one attempt (ms). */
  attemptTimeoutMs: number;
  /** Time after which an operation that found no quorum fails with NO_QUORUM (ms). */
  operationTimeoutMs: number;
  /** True once the store is closed: a failure then is STORE_CLOSED, not worth a retry. */
  isClosed(): boolean;
}

const FIRST_BACKOFF_MS = 25;
const MAX_BACKOFF_MS = 400;

/**
 * Runs `attempt` until it gives a definite answer. Only call this with
 * attempts that are safe to repeat (reads, marker-guarded txns, id-chosen
 * grants, keep-alives, revokes). Transient failures are retried with
 * back-off, each attempt on an endpoint the client picks at random, until
 * the operation timeout, then NO_QUORUM.
 */
export async function retryUntilAnswered<T>(
  policy: RetryPolicy,
  operation: string,
  attempt: Attempt<T>,
): Promise<T> {
  const giveUpAt = Date.now() + policy.operationTimeoutMs;
  let backoffMs = FIRST_BACKOFF_MS;
  let lastError: unknown;
  for (let n = 1; ; n++) {
    const deadline = new Date(Math.min(Date.now() + policy.attemptTimeoutMs, giveUpAt));
    try {
      return await attempt(deadline);
    } catch (err) {
      const definite = definiteError(err);
      if (definite) throw definite;
      if (policy.isClosed()) throw new AmalgamError('STORE_CLOSED');
      lastError = err;
    }
    const remaining = giveUpAt - Date.now();
    if (remaining <= 0) throw noQuorum(operation, n, lastError);
    await sleep(Math.min(backoffMs, remaining));
    backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
