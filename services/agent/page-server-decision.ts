/**
 * The page server reconciler's decision, as a pure function (STYLE 6: level
 * based and idempotent). It compares what is desired - the node's committed
 * range, or none - with what runs, and answers ONE action; the agent performs
 * it and asks again. Asking twice with the same inputs answers the same.
 *
 * No byte is served before the range is committed: without a range of size
 * > 0 the answer is never `start`, and a running server is stopped.
 */

export interface Range {
  start: number;
  size: number;
}

/** The range the control plane committed for this node; null when unknown or none yet. */
export type Desired = Range | null;

export type Actual =
  | { state: 'stopped'; failures: number; retryAt: number }
  | { state: 'starting'; range: Range }
  | { state: 'running'; range: Range; healthy: boolean }
  | { state: 'stopping' };

export type Action =
  | { kind: 'none' }
  | { kind: 'start'; range: Range }
  | { kind: 'stop'; reason: 'no-range' | 'range-changed' | 'unhealthy' }
  /** Nothing to do before `ms` have passed (a restart back-off). */
  | { kind: 'wait'; ms: number };

export const sameRange = (a: Range, b: Range): boolean => a.start === b.start && a.size === b.size;

export const isCommitted = (desired: Desired): desired is Range =>
  desired !== null && Number.isSafeInteger(desired.size) && desired.size > 0;

export function decide(desired: Desired, actual: Actual, now: number): Action {
  switch (actual.state) {
    case 'stopping':
    case 'starting':
      return { kind: 'none' };
    case 'running':
      if (!isCommitted(desired)) return { kind: 'stop', reason: 'no-range' };
      if (!sameRange(desired, actual.range)) return { kind: 'stop', reason: 'range-changed' };
      if (!actual.healthy) return { kind: 'stop', reason: 'unhealthy' };
      return { kind: 'none' };
    case 'stopped':
      if (!isCommitted(desired)) return { kind: 'none' };
      if (now < actual.retryAt) return { kind: 'wait', ms: actual.retryAt - now };
      return { kind: 'start', range: { start: desired.start, size: desired.size } };
  }
}

/** Exponential back-off after `failures` consecutive failures: base * 2^(n-1), capped; 0 for none. */
export function backoffMs(failures: number, baseMs = 200, maxMs = 30_000): number {
  if (failures <= 0) return 0;
  return Math.min(maxMs, baseMs * 2 ** Math.min(failures - 1, 20));
}

/**
 * Whether the node should stop claiming to be Ready: a range is committed
 * (so a page server should run) and the last `limit` attempts in a row to have
 * one failed (a start that failed, or a process that exited before passing a
 * health check; the crash that began the streak counts as the first). A
 * restart that succeeds ends the streak.
 */
export function pageServerFailed(desired: Desired, actual: Actual, limit: number): boolean {
  return isCommitted(desired) && actual.state === 'stopped' && actual.failures >= limit;
}
