/** Timers the reconcile machinery uses, injectable so tests drive time. */

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Real timers that never keep the process alive on their own. */
export const REAL_TIMERS: Timers = {
  setTimeout: (fn, ms) => {
    const timer = setTimeout(fn, ms);
    timer.unref?.();
    return timer;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** Waits `ms`; `onWake` receives a function that ends the wait early (close). */
export function sleep(
  ms: number,
  timers: Timers = REAL_TIMERS,
  onWake?: (wake: () => void) => void,
): Promise<void> {
  return new Promise((resolve) => {
    const handle = timers.setTimeout(resolve, ms);
    onWake?.(() => {
      timers.clearTimeout(handle);
      resolve();
    });
  });
}
