/**
 * A deduplicating queue of keys with one pass per key at a time: any number
 * of `add(key)` while its pass runs make one more pass; a pass that throws is
 * retried after a per-key exponential back-off. The agent's loops run on it
 * until they move to services/reconcile's WorkQueue (same shape: handlers only
 * add keys, the pass is level-based).
 */
import { backoffMs } from './page-server-decision.ts';

export class KeyedQueue<K> {
  readonly #pass: (key: K) => Promise<void>;
  readonly #onError: (key: K, err: unknown, retryInMs: number) => void;
  readonly #state = new Map<K, { running: boolean; dirty: boolean; failures: number }>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #closed = false;

  constructor(
    pass: (key: K) => Promise<void>,
    onError: (key: K, err: unknown, retryInMs: number) => void,
  ) {
    this.#pass = pass;
    this.#onError = onError;
  }

  add(key: K): void {
    if (this.#closed) return;
    let s = this.#state.get(key);
    if (!s) {
      s = { running: false, dirty: false, failures: 0 };
      this.#state.set(key, s);
    }
    s.dirty = true;
    if (!s.running) void this.#drain(key, s);
  }

  addAfter(key: K, ms: number): void {
    if (this.#closed) return;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.add(key);
    }, ms);
    this.#timers.add(timer);
  }

  close(): void {
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }

  async #drain(key: K, s: { running: boolean; dirty: boolean; failures: number }): Promise<void> {
    s.running = true;
    try {
      while (s.dirty && !this.#closed) {
        s.dirty = false;
        try {
          await this.#pass(key);
          s.failures = 0;
        } catch (err) {
          s.failures++;
          const wait = backoffMs(s.failures, 1000, 30_000);
          this.#onError(key, err, wait);
          this.addAfter(key, wait);
        }
      }
    } finally {
      s.running = false;
    }
  }
}
