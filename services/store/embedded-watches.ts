/**
 * The embedded store's live watches: each gets the events of its prefix from
 * its start revision, as their records become durable.
 */
import type { WatchEvent } from './store.ts';
import { WatchStream } from './watch-stream.ts';

interface WatchRegistration {
  prefix: string;
  fromRevision: number;
  stream: WatchStream;
}

export class WatchRegistry {
  readonly #watches = new Set<WatchRegistration>();

  /**
   * A stream that starts with `history` (the durable events it asked for)
   * and is registered for what follows; closing it unregisters it.
   */
  open(prefix: string, fromRevision: number, history: () => WatchEvent[]): WatchStream {
    const registration: WatchRegistration = {
      prefix,
      fromRevision,
      stream: new WatchStream(() => this.#watches.delete(registration)),
    };
    const { stream } = registration;
    try {
      stream.push(history());
    } catch (err) {
      // A compacted start revision surfaces on iteration.
      stream.fail(err);
      return stream;
    }
    this.#watches.add(registration);
    return stream;
  }

  /** Hands newly durable events to every watch they match. */
  publish(events: readonly WatchEvent[]): void {
    if (events.length === 0) return;
    for (const watch of this.#watches) {
      const matching = events.filter(
        (event) => event.revision >= watch.fromRevision && event.kv.key.startsWith(watch.prefix),
      );
      if (matching.length > 0) watch.stream.push(matching);
    }
  }

  /** Ends every watch with `err`. */
  failAll(err: unknown): void {
    for (const watch of this.#watches) watch.stream.fail(err);
  }

  /** Ends every watch after what it has queued. */
  finishAll(): void {
    for (const watch of this.#watches) watch.stream.finish();
  }
}
