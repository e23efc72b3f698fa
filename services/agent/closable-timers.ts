/**
 * Timers that end with their owner: `later` schedules nothing once
 * `isClosed()`, a pending callback does not run when its owner closed in the
 * meantime, and `clear` cancels every pending one (the owner's close).
 */
export function closableTimers(isClosed: () => boolean): {
  later(ms: number, fn: () => void): void;
  clear(): void;
} {
  const timers = new Set<NodeJS.Timeout>();
  return {
    later(ms, fn) {
      if (isClosed()) return;
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (!isClosed()) fn();
      }, ms);
      timers.add(timer);
    },
    clear() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
    },
  };
}
