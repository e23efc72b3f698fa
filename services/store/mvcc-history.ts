/**
 * The event history of the embedded state machine: every committed event
 * since the compaction point, in revision order. Watches replay from it; the
 * key-value state (mvcc.ts) appends to it on every commit. Pure, like mvcc.ts.
 */
import { AmalgamError } from '../core/errors.ts';
import type { WatchEvent } from './store.ts';

export class EventHistory {
  #events: WatchEvent[];
  #compactRevision: number;

  constructor(events: readonly WatchEvent[] = [], compactRevision = 0) {
    this.#events = events.map(freezeEvent);
    this.#compactRevision = compactRevision;
  }

  /** History before this revision is gone. */
  get compactRevision(): number {
    return this.#compactRevision;
  }

  /** Every retained event, in order (for a snapshot). */
  events(): WatchEvent[] {
    return [...this.#events];
  }

  /** Appends committed events; they must not be older than the last one. */
  append(events: readonly WatchEvent[]): void {
    for (const event of events) this.#events.push(Object.freeze(event));
  }

  /**
   * Events on keys starting with `prefix` with fromRevision <= revision <=
   * throughRevision, in order. Throws WATCH_COMPACTED when history before
   * fromRevision is gone (etcd: a watch may start at the compaction point,
   * not before it).
   */
  eventsSince(prefix: string, fromRevision: number, throughRevision: number): WatchEvent[] {
    if (fromRevision < this.#compactRevision) {
      throw new AmalgamError('WATCH_COMPACTED', `revision ${fromRevision}`, {
        fromRevision,
        compactRevision: this.#compactRevision,
      });
    }
    const events: WatchEvent[] = [];
    for (let i = this.#firstEventAt(fromRevision); i < this.#events.length; i++) {
      const event = this.#events[i] as WatchEvent;
      if (event.revision > throughRevision) break;
      if (event.kv.key.startsWith(prefix)) events.push(event);
    }
    return events;
  }

  /** Forgets the events before `revision`; the caller has checked it is a step forward. */
  compact(revision: number): void {
    this.#events = this.#events.slice(this.#firstEventAt(revision));
    this.#compactRevision = revision;
  }

  /** Index of the first event with revision >= `revision`. */
  #firstEventAt(revision: number): number {
    let lo = 0;
    let hi = this.#events.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.#events[mid] as WatchEvent).revision < revision) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** etcd's delete event: only the key and the revision of the delete are set. */
export function deleteEvent(key: string, revision: number): WatchEvent {
  return {
    type: 'delete',
    kv: Object.freeze({ key, value: '', createRevision: 0, modRevision: revision, version: 0 }),
    revision,
  };
}

function freezeEvent(event: WatchEvent): WatchEvent {
  return Object.freeze({ ...event, kv: Object.freeze({ ...event.kv }) });
}
