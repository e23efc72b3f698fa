/**
 * WorkQueue: the queue every level-based loop of amalgam runs from (the
 * client-go workqueue, as kubernetes/sample-controller uses it).
 *
 * - Dedupe by key: a key added any number of times before a worker takes it
 *   is processed once. Handlers only `add(key)`; the worker reads the current
 *   state itself (level-based), so nothing is lost by merging adds.
 * - Single flight per key: a key is never processed twice at once. Added
 *   while it is being processed, it is processed once more afterwards (the
 *   change may have come after the worker read the state).
 * - Per-key exponential back-off on failure (`baseDelayMs * 2^(n-1)`, capped
 *   at `maxDelayMs`); a success resets it. A `TerminalError` is logged and not
 *   retried (the input cannot succeed; a new add tries again).
 * - `requeueAfterMs` from the worker schedules the key again (a grace period
 *   that ends, a periodic pass): the controller-runtime `RequeueAfter`.
 * - `close()` stops taking work, cancels timers and waits for the work in
 *   flight.
 */
import type { Logger } from 'pino';
import { REAL_TIMERS, type Timers } from './timers.ts';

/** Thrown by a worker when retrying cannot help; the queue drops the key. */
export class TerminalError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TerminalError';
  }
}

// biome-ignore lint/suspicious/noConfusingVoidType: a worker may return nothing.
export type WorkResult = void | { requeueAfterMs?: number };

export interface WorkQueueOptions<K extends string> {
  /** For logs and metrics. */
  name: string;
  worker: (key: K) => Promise<WorkResult>;
  /** Keys processed at once (each key still single flight). Default 1. */
  concurrency?: number;
  /** First retry delay. Default 200 ms. */
  baseDelayMs?: number;
  /** Retry delay cap. Default 30 s. */
  maxDelayMs?: number;
  /** Which errors are not retried. Default: `TerminalError`. */
  isTerminal?: (err: unknown) => boolean;
  logger?: Logger;
  timers?: Timers;
}

export interface WorkQueueStats {
  /** Keys waiting for a worker. */
  depth: number;
  inFlight: number;
  /** Keys waiting for a delayed add (back-off or requeueAfter). */
  delayed: number;
  processed: number;
  retries: number;
  terminal: number;
}

/** Exponential back-off after `failures` consecutive failures: base * 2^(n-1), capped; 0 for none. */
export function backoffDelay(failures: number, baseMs: number, maxMs: number): number {
  if (failures <= 0) return 0;
  return Math.min(maxMs, baseMs * 2 ** Math.min(failures - 1, 30));
}

export class WorkQueue<K extends string = string> {
  readonly name: string;
  private readonly ready: K[] = [];
  private readonly queued = new Set<K>();
  private readonly processing = new Set<K>();
  private readonly dirty = new Set<K>();
  private readonly delayedAdds = new Map<K, { at: number; handle: unknown }>();
  private readonly failures = new Map<K, number>();
  private readonly running = new Set<Promise<void>>();
  private readonly idleWaiters: (() => void)[] = [];
  private readonly counters = { processed: 0, retries: 0, terminal: 0 };
  private closed = false;

  constructor(private readonly options: WorkQueueOptions<K>) {
    this.name = options.name;
  }

  /** Process `key` as soon as a worker is free (deduplicated). */
  add(key: K): void {
    if (this.closed) return;
    this.cancelDelayed(key);
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.ready.push(key);
    this.pump();
  }

  /** Process `key` in `ms` (an earlier pending add for it wins). */
  addAfter(key: K, ms: number): void {
    if (this.closed) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const timers = this.options.timers ?? REAL_TIMERS;
    const at = Date.now() + ms;
    const pending = this.delayedAdds.get(key);
    if (pending && pending.at <= at) return;
    if (pending) timers.clearTimeout(pending.handle);
    const handle = timers.setTimeout(() => {
      this.delayedAdds.delete(key);
      this.add(key);
    }, ms);
    this.delayedAdds.set(key, { at, handle });
  }

  /** Drops a key's back-off and any pending delayed add (e.g. the resource was deleted). */
  forget(key: K): void {
    this.failures.delete(key);
    this.cancelDelayed(key);
  }

  stats(): WorkQueueStats {
    return {
      depth: this.ready.length,
      inFlight: this.processing.size,
      delayed: this.delayedAdds.size,
      ...this.counters,
    };
  }

  /** Resolves once nothing is queued or in flight (delayed adds do not count). */
  idle(): Promise<void> {
    if (this.ready.length === 0 && this.processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Takes no more work, cancels timers, waits for the work in flight. */
  async close(): Promise<void> {
    this.closed = true;
    for (const key of [...this.delayedAdds.keys()]) this.cancelDelayed(key);
    this.ready.length = 0;
    this.queued.clear();
    this.dirty.clear();
    await Promise.allSettled([...this.running]);
    this.notifyIdle();
  }

  private cancelDelayed(key: K): void {
    const pending = this.delayedAdds.get(key);
    if (!pending) return;
    (this.options.timers ?? REAL_TIMERS).clearTimeout(pending.handle);
    this.delayedAdds.delete(key);
  }

  private pump(): void {
    const concurrency = Math.max(1, this.options.concurrency ?? 1);
    while (!this.closed && this.processing.size < concurrency && this.ready.length > 0) {
      const key = this.ready.shift() as K;
      this.queued.delete(key);
      this.processing.add(key);
      const run = this.process(key);
      this.running.add(run);
      void run.finally(() => this.running.delete(run));
    }
  }

  private async process(key: K): Promise<void> {
    try {
      const result = await this.options.worker(key);
      this.counters.processed += 1;
      this.failures.delete(key);
      const after = result?.requeueAfterMs;
      if (after !== undefined && !this.closed) this.addAfter(key, after);
    } catch (err) {
      this.onFailure(key, err);
    } finally {
      this.processing.delete(key);
      if (this.dirty.delete(key)) this.add(key);
      this.pump();
      this.notifyIdle();
    }
  }

  private onFailure(key: K, err: unknown): void {
    const terminal = (this.options.isTerminal ?? ((e) => e instanceof TerminalError))(err);
    if (terminal) {
      this.counters.terminal += 1;
      this.failures.delete(key);
      this.options.logger?.warn(
        { err, queue: this.name, key },
        'work failed for good; not retried',
      );
      return;
    }
    const failures = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, failures);
    this.counters.retries += 1;
    const delay = backoffDelay(
      failures,
      this.options.baseDelayMs ?? 200,
      this.options.maxDelayMs ?? 30_000,
    );
    this.options.logger?.debug(
      { err, queue: this.name, key, failures, retryInMs: delay },
      'work failed; retrying with back-off',
    );
    if (!this.closed && !this.dirty.has(key)) this.addAfter(key, delay);
  }

  private notifyIdle(): void {
    if (this.ready.length > 0 || this.processing.size > 0) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
