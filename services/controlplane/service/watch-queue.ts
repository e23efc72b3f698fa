/**
 * One watch's outgoing queue, bounded. The store's watch is drained into it
 * as fast as the store delivers (so nothing piles up unbounded below), and
 * the client pulls from it at its own pace. When the client reads so slowly
 * that more than `maxEvents` events or `maxBytes` bytes wait, the watch is
 * cut: the queue is dropped, the store watch closed, and the client's next
 * read fails with WATCH_SLOW_CONSUMER (re-list, then watch from the list's
 * revision; replaying a backlog it could not drain would only overflow again).
 */
import { AmalgamError } from '../../core/errors.ts';
import type { Watch, WatchEvent } from '../../store/store.ts';

export interface QueueLimits {
  maxEvents: number;
  maxBytes: number;
}

/** What an event costs in the queue: its key and value, plus a fixed overhead. */
export function eventBytes(event: WatchEvent): number {
  return 64 + event.kv.key.length + event.kv.value.length;
}

export class BoundedWatchQueue implements AsyncIterable<WatchEvent> {
  readonly #source: Watch;
  readonly #limits: QueueLimits;
  readonly #onOverflow: (queued: { events: number; bytes: number }) => void;
  #queue: WatchEvent[] = [];
  /** The first unread event of #queue (consumed ones are dropped in bulk, not shift()ed). */
  #head = 0;
  #bytes = 0;
  #waiter:
    | { resolve: (r: IteratorResult<WatchEvent>) => void; reject: (e: unknown) => void }
    | undefined;
  #error: unknown;
  #ended = false;

  constructor(
    source: Watch,
    limits: QueueLimits,
    onOverflow: (queued: { events: number; bytes: number }) => void,
  ) {
    this.#source = source;
    this.#limits = limits;
    this.#onOverflow = onOverflow;
    void this.#pump();
  }

  /** Events and bytes waiting for the client. */
  get queued(): { events: number; bytes: number } {
    return { events: this.#queue.length - this.#head, bytes: this.#bytes };
  }

  async #pump(): Promise<void> {
    try {
      for await (const event of this.#source) {
        if (this.#ended) return;
        this.#push(event);
      }
      this.#end(undefined);
    } catch (err) {
      this.#end(err);
    }
  }

  #push(event: WatchEvent): void {
    const waiter = this.#waiter;
    if (waiter) {
      this.#waiter = undefined;
      waiter.resolve({ value: event, done: false });
      return;
    }
    this.#queue.push(event);
    this.#bytes += eventBytes(event);
    const { maxEvents, maxBytes } = this.#limits;
    if (this.#queue.length - this.#head <= maxEvents && this.#bytes <= maxBytes) return;
    const queued = this.queued;
    this.#drop();
    this.#end(
      new AmalgamError(
        'WATCH_SLOW_CONSUMER',
        `${queued.events} events (${queued.bytes} bytes) waited for the client`,
        { queuedEvents: queued.events, queuedBytes: queued.bytes, maxEvents, maxBytes },
      ),
    );
    void this.#source.close().catch(() => {});
    this.#onOverflow(queued);
  }

  /** Ends the queue: after what is queued, iteration ends (or throws `error`). */
  #end(error: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    if (!waiter) return;
    this.#error = undefined;
    if (error === undefined) waiter.resolve({ value: undefined, done: true });
    else waiter.reject(error);
  }

  #next(): Promise<IteratorResult<WatchEvent>> {
    if (this.#head < this.#queue.length) {
      const event = this.#queue[this.#head] as WatchEvent;
      this.#head++;
      this.#bytes -= eventBytes(event);
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue.splice(0, this.#head);
        this.#head = 0;
      }
      return Promise.resolve({ value: event, done: false });
    }
    if (this.#ended) {
      const error = this.#error;
      this.#error = undefined;
      return error === undefined
        ? Promise.resolve({ value: undefined, done: true })
        : Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  #drop(): void {
    this.#queue = [];
    this.#head = 0;
    this.#bytes = 0;
  }

  async close(): Promise<void> {
    this.#drop();
    this.#end(undefined);
    await this.#source.close();
  }

  [Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
    return {
      next: () => this.#next(),
      return: async () => {
        await this.close();
        return { value: undefined, done: true };
      },
    };
  }
}
