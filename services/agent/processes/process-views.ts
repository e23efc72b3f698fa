/**
 * The supervisor's view of the process space: the newest `ProcessView` seen
 * per cluster PID, from watch events, lists and the answers of reports. A
 * view never goes back: an answer that was in flight while a newer event came
 * is dropped (epoch first, then progress within the epoch).
 */
import type { ProcessView } from '../../api/contracts.ts';
import { isTerminalView } from './copy-decision.ts';

function rank(view: ProcessView): number {
  if (isTerminalView(view)) return 4;
  if (view.state === 'running') return 3;
  if (view.state === 'migrating')
    return view.migration?.sourceStopped ? 2 : view.migration?.sourceLostAt ? 1 : 0;
  return 0;
}

/** Whether `next` is at least as new as `prev`. */
export function newer(prev: ProcessView | undefined, next: ProcessView): boolean {
  if (!prev) return true;
  if (next.epoch !== prev.epoch) return next.epoch > prev.epoch;
  if (rank(next) !== rank(prev)) return rank(next) > rank(prev);
  return next.starts >= prev.starts;
}

export class ProcessViews {
  readonly #views = new Map<number, ProcessView>();

  get(cpid: number): ProcessView | undefined {
    return this.#views.get(cpid);
  }

  /** Keeps `view` when it is at least as new as the one held; answers whether it did. */
  merge(view: ProcessView): boolean {
    if (!newer(this.#views.get(view.cpid), view)) return false;
    this.#views.set(view.cpid, view);
    return true;
  }

  all(): IterableIterator<ProcessView> {
    return this.#views.values();
  }
}
