/**
 * A watch as an async iterable over a queue: the store pushes events (the
 * replayed history, then live ones) and the consumer pulls them at its pace.
 */

import type { Watch, WatchEvent } from './store.ts';

export class WatchStream implements Watch {
  readonly #queue: WatchEvent[] = [];
  #head = 0;
  #waiter:
    | { resolve: (r: IteratorResult<WatchEvent>) => void; reject: (e: unknown) => void }
    | undefined;
  #error: unknown;
  #ended = false;
  readonly #onClose: () => void;

  constructor(onClose: () => void) {
    this.#onClose = onClose;
  }

  get ended(): boolean {
    return this.#ended;
  }

  push(events: readonly WatchEvent[]): void {
    if (this.#ended) return;
    for (const event of events) {
      const waiter = this.#waiter;
      if (waiter) {
        this.#waiter = undefined;
        waiter.resolve({ value: event, done: false });
      } else {
        this.#queue.push(event);
      }
    }
  }

  /** Ends the stream: iteration throws `error` once the queued events are consumed. */
  fail(error: unknown): void {
    if (this.#ended) return;
    this.#error = error;
    this.#end();
  }

  /** Ends iteration after the queued events; nothing more is delivered. */
  finish(): void {
    this.#end();
  }

  async close(): Promise<void> {
    // A closed watch delivers nothing more, not even what was queued.
    this.#queue.length = 0;
    this.#head = 0;
    this.#error = undefined;
    this.#end();
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

  #next(): Promise<IteratorResult<WatchEvent>> {
    if (this.#head < this.#queue.length) {
      const value = this.#queue[this.#head] as WatchEvent;
      this.#head++;
      // Drop consumed events in bulk rather than shift() one at a time.
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue.splice(0, this.#head);
        this.#head = 0;
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.#ended) {
      if (this.#error !== undefined) {
        const error = this.#error;
        this.#error = undefined;
        return Promise.reject(error);
      }
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#onClose();
    const waiter = this.#waiter;
    this.#waiter = undefined;
    if (!waiter) return;
    if (this.#error !== undefined) {
      const error = this.#error;
      this.#error = undefined;
      waiter.reject(error);
    } else {
      waiter.resolve({ value: undefined, done: true });
    }
  }
}
