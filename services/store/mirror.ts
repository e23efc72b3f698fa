/**
 * A watch-fed, in-memory mirror of one prefix of the store, with
 * linearizable reads: what kube-apiserver's watch cache does, for lists that
 * are read far more often than they change.
 *
 * `sync()` takes the store's current revision (one tiny quorum read) and
 * waits until the mirror has applied everything up to it, so a read after
 * `sync()` sees every write acknowledged before the read began, exactly as a
 * direct range would. The watch only carries events under the prefix, so a
 * revision made elsewhere (another prefix, an internal key) never arrives;
 * after `catchUpMs` without it, the mirror reloads itself from one range at
 * the current revision (the slow path, the cost of a direct read).
 */
import type { Logger } from 'pino';
import { isAmalgamError } from '../core/errors.ts';
import type { KeyValue, Store, Watch, WatchEvent } from './store.ts';

export interface Mirror {
  /** Resolves once the mirror holds every write committed before the call; returns its revision. */
  sync(): Promise<number>;
  get(key: string): KeyValue | undefined;
  /** Keys under `prefix` (which must be inside the mirrored prefix), in key order. */
  range(prefix: string): KeyValue[];
  /** Bumped on every change: derived values cached against it stay valid while it is unchanged. */
  readonly generation: number;
  close(): Promise<void>;
}

export interface MirrorOptions {
  logger?: Logger;
  /** How long sync() waits for the watch before reloading. Default 100 ms. */
  catchUpMs?: number;
}

export async function openMirror(
  store: Store,
  prefix: string,
  options: MirrorOptions = {},
): Promise<Mirror> {
  const mirror = new WatchedMirror(store, prefix, options);
  await mirror.reload();
  return mirror;
}

/** How long a failed watch waits before the mirror reloads (ms). */
const RELOAD_AFTER_WATCH_FAILURE_MS = 100;

class WatchedMirror implements Mirror {
  readonly #store: Store;
  readonly #prefix: string;
  readonly #options: MirrorOptions;
  readonly #catchUpMs: number;
  readonly #kvs = new Map<string, KeyValue>();
  /** #kvs' keys in order, computed on demand and dropped on every change. */
  #sortedKeys: string[] | undefined;
  /** Every revision up to this one is applied. */
  #applied = 0;
  /** The newest revision an event arrived for: applied once its queued events are. */
  #seen = 0;
  #generation = 0;
  /** The current watch; one replaced by a reload delivers nothing more. */
  #watch: Watch | undefined;
  #closed = false;
  #reloading: Promise<void> | undefined;
  /** sync() calls waiting for #applied to move. */
  readonly #waiters = new Set<() => void>();
  #promoteScheduled = false;

  constructor(store: Store, prefix: string, options: MirrorOptions) {
    this.#store = store;
    this.#prefix = prefix;
    this.#options = options;
    this.#catchUpMs = options.catchUpMs ?? 100;
  }

  get generation(): number {
    return this.#generation;
  }

  async sync(): Promise<number> {
    const target = await this.#store.revision();
    if (this.#applied >= target) return this.#applied;
    if (!(await this.#caughtUp(target))) await this.reload();
    return this.#applied;
  }

  get(key: string): KeyValue | undefined {
    return this.#kvs.get(key);
  }

  range(sub: string): KeyValue[] {
    this.#sortedKeys ??= [...this.#kvs.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const out: KeyValue[] = [];
    for (const key of this.#sortedKeys) {
      if (key.startsWith(sub)) out.push(this.#kvs.get(key) as KeyValue);
    }
    return out;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#watch?.close();
  }

  /** Loads the prefix from one range and watches from there; one reload at a time. */
  reload(): Promise<void> {
    this.#reloading ??= this.#load().finally(() => {
      this.#reloading = undefined;
    });
    return this.#reloading;
  }

  async #load(): Promise<void> {
    const snapshot = await this.#store.range(this.#prefix);
    this.#kvs.clear();
    for (const kv of snapshot.kvs) this.#kvs.set(kv.key, kv);
    this.#applied = snapshot.revision;
    this.#seen = snapshot.revision;
    this.#changed();
    this.#wake();
    this.#startWatch(snapshot.revision + 1);
  }

  /** True once #applied reaches `target`, false when catchUpMs passes first. */
  #caughtUp(target: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const check = () => {
        if (this.#applied >= target) {
          this.#waiters.delete(check);
          clearTimeout(timer);
          resolve(true);
        }
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        resolve(this.#applied >= target);
      }, this.#catchUpMs);
      this.#waiters.add(check);
    });
  }

  #startWatch(fromRevision: number): void {
    const previous = this.#watch;
    const current = this.#store.watch(this.#prefix, { fromRevision });
    this.#watch = current;
    void previous?.close();
    void this.#follow(current);
  }

  /** Applies the events of `watch` while it is current; reloads when it fails. */
  async #follow(watch: Watch): Promise<void> {
    try {
      for await (const ev of watch) {
        if (this.#watch !== watch) return;
        this.#apply(ev);
      }
    } catch (err) {
      if (this.#closed || this.#watch !== watch) return;
      this.#options.logger?.warn(
        { err: (err as Error).message, compacted: isAmalgamError(err, 'WATCH_COMPACTED') },
        'mirror watch failed; reloading',
      );
      await new Promise((r) => setTimeout(r, RELOAD_AFTER_WATCH_FAILURE_MS));
      if (!this.#closed && this.#watch === watch) void this.reload().catch(() => {});
    }
  }

  #apply(ev: WatchEvent): void {
    if (ev.type === 'put') this.#kvs.set(ev.kv.key, ev.kv);
    else this.#kvs.delete(ev.kv.key);
    this.#changed();
    // A revision can hold several events, delivered one by one. Everything
    // before this one is complete; this one is once the queue is drained.
    this.#applied = Math.max(this.#applied, ev.revision - 1);
    this.#seen = Math.max(this.#seen, ev.revision);
    this.#promoteSoon();
  }

  /** Events of one revision are queued together, so after the microtasks they are all applied. */
  #promoteSoon(): void {
    if (this.#promoteScheduled) return;
    this.#promoteScheduled = true;
    setImmediate(() => {
      this.#promoteScheduled = false;
      this.#applied = Math.max(this.#applied, this.#seen);
      this.#wake();
    });
  }

  #changed(): void {
    this.#generation++;
    this.#sortedKeys = undefined;
  }

  #wake(): void {
    for (const waiter of this.#waiters) waiter();
  }
}
