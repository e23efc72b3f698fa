/** Fakes for the reconcile machinery's tests: timers driven by hand, a store-like source. */
import type {
  InformerSource,
  InformerWatch,
  Timers,
  WatchEvent,
} from '../../../services/reconcile/index.ts';

/** Timers that fire only when the test advances time. */
export class FakeTimers implements Timers {
  now = 0;
  private next = 1;
  private readonly pending = new Map<number, { at: number; fn: () => void }>();
  /** Every delay asked for, in order (what a back-off test reads). */
  readonly delays: number[] = [];

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.next++;
    this.delays.push(ms);
    this.pending.set(id, { at: this.now + ms, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }

  get size(): number {
    return this.pending.size;
  }

  /** Moves time forward, firing what falls due (in time order), then lets promises settle. */
  async advance(ms: number): Promise<void> {
    const until = this.now + ms;
    for (;;) {
      const due = [...this.pending.entries()]
        .filter(([, t]) => t.at <= until)
        .sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.pending.delete(due[0]);
      this.now = due[1].at;
      due[1].fn();
      await settle();
    }
    this.now = until;
    await settle();
  }
}

/** Lets every queued promise continuation run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** One open watch of the fake source: the test pushes events, ends or fails it. */
export class FakeWatch<T> implements InformerWatch<T> {
  closed = false;
  private readonly buffer: WatchEvent<T>[] = [];
  private failure: unknown = null;
  private ended = false;
  private wake: (() => void) | null = null;

  constructor(readonly fromRevision: number | undefined) {}

  push(event: WatchEvent<T>): void {
    this.buffer.push(event);
    this.wake?.();
  }

  fail(err: unknown): void {
    this.failure = err;
    this.wake?.();
  }

  end(): void {
    this.ended = true;
    this.wake?.();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<WatchEvent<T>> {
    for (;;) {
      const event = this.buffer.shift();
      if (event) {
        yield event;
        continue;
      }
      if (this.failure) throw this.failure;
      if (this.ended || this.closed) return;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = null;
    }
  }
}

/** A revisioned key-value source, like the store behind the API. */
export class FakeSource<T> implements InformerSource<T> {
  revision = 1;
  readonly items = new Map<string, T>();
  readonly watches: FakeWatch<T>[] = [];
  /** Order of calls: 'list' / 'watch'. */
  readonly calls: string[] = [];
  listFailure: unknown = null;

  constructor(readonly revisioned = true) {}

  put(key: string, value: T): WatchEvent<T> {
    this.revision += 1;
    this.items.set(key, value);
    return { type: 'put', key, value, revision: this.revision };
  }

  del(key: string): WatchEvent<T> {
    this.revision += 1;
    this.items.delete(key);
    return { type: 'delete', key, value: null, revision: this.revision };
  }

  async list() {
    this.calls.push('list');
    if (this.listFailure) throw this.listFailure;
    return {
      items: [...this.items.entries()],
      ...(this.revisioned ? { revision: this.revision } : {}),
    };
  }

  watch(fromRevision?: number): FakeWatch<T> {
    this.calls.push('watch');
    const watch = new FakeWatch<T>(fromRevision);
    this.watches.push(watch);
    return watch;
  }

  get current(): FakeWatch<T> {
    const last = this.watches.at(-1);
    if (!last) throw new Error('no watch opened');
    return last;
  }
}
