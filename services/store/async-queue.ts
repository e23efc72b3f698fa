/**
 * An unbounded single-consumer queue exposed as an AsyncIterable: producers
 * push, fail or end; the consumer iterates. Used by watches of both backends.
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private waiter: ((result: IteratorResult<T>) => void) | undefined;
  private failWaiter: ((err: Error) => void) | undefined;
  private error: Error | undefined;
  private finished = false;
  private resolveEnded!: () => void;
  /** Resolves once the queue is ended or failed. */
  readonly ended = new Promise<void>((resolve) => {
    this.resolveEnded = resolve;
  });

  get size(): number {
    return this.items.length;
  }

  push(item: T): void {
    if (this.finished) return;
    const waiter = this.waiter;
    if (waiter) {
      this.clearWaiters();
      waiter({ done: false, value: item });
    } else {
      this.items.push(item);
    }
  }

  /** Ends the stream after the items already queued. */
  end(): void {
    if (this.finished) return;
    this.finished = true;
    this.resolveEnded();
    const waiter = this.waiter;
    this.clearWaiters();
    waiter?.({ done: true, value: undefined });
  }

  /** Fails the stream: the consumer receives the queued items, then `err`. */
  fail(err: Error): void {
    if (this.finished) return;
    this.error = err;
    this.finished = true;
    this.resolveEnded();
    const failWaiter = this.failWaiter;
    this.clearWaiters();
    failWaiter?.(err);
  }

  private clearWaiters(): void {
    this.waiter = undefined;
    this.failWaiter = undefined;
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        const item = this.items.shift();
        if (item !== undefined) return Promise.resolve({ done: false, value: item });
        if (this.error) return Promise.reject(this.error);
        if (this.finished) return Promise.resolve({ done: true, value: undefined });
        return new Promise<IteratorResult<T>>((resolve, reject) => {
          this.waiter = resolve;
          this.failWaiter = reject;
        });
      },
      return: () => {
        this.end();
        this.items.length = 0;
        return Promise.resolve({ done: true, value: undefined });
      },
    };
  }
}
