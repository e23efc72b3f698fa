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
import type { KeyValue, Store, Watch } from './store.ts';

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
  const catchUpMs = options.catchUpMs ?? 100;
  const kvs = new Map<string, KeyValue>();
  let sortedKeys: string[] | undefined;
  let applied = 0;
  let generation = 0;
  let watch: Watch | undefined;
  let closed = false;
  let reloading: Promise<void> | undefined;
  const waiters = new Set<() => void>();
  let seen = 0;
  let promoteScheduled = false;
  /** Events of one revision are queued together, so after the microtasks they are all applied. */
  const promoteSoon = () => {
    if (promoteScheduled) return;
    promoteScheduled = true;
    setImmediate(() => {
      promoteScheduled = false;
      applied = Math.max(applied, seen);
      wake();
    });
  };

  const changed = () => {
    generation++;
    sortedKeys = undefined;
  };
  const wake = () => {
    for (const w of waiters) w();
  };

  async function load(): Promise<void> {
    const snapshot = await store.range(prefix);
    kvs.clear();
    for (const kv of snapshot.kvs) kvs.set(kv.key, kv);
    applied = snapshot.revision;
    seen = snapshot.revision;
    changed();
    wake();
    startWatch(snapshot.revision + 1);
  }

  function reload(): Promise<void> {
    reloading ??= load().finally(() => {
      reloading = undefined;
    });
    return reloading;
  }

  function startWatch(fromRevision: number): void {
    const previous = watch;
    const current = store.watch(prefix, { fromRevision });
    watch = current;
    void previous?.close();
    void (async () => {
      try {
        for await (const ev of current) {
          // A watch replaced by a reload delivers nothing more.
          if (watch !== current) return;
          if (ev.type === 'put') kvs.set(ev.kv.key, ev.kv);
          else kvs.delete(ev.kv.key);
          changed();
          // A revision can hold several events, delivered one by one. Everything
          // before this one is complete; this one is once the queue is drained.
          applied = Math.max(applied, ev.revision - 1);
          seen = Math.max(seen, ev.revision);
          promoteSoon();
        }
      } catch (err) {
        if (closed || watch !== current) return;
        options.logger?.warn(
          { err: (err as Error).message, compacted: isAmalgamError(err, 'WATCH_COMPACTED') },
          'mirror watch failed; reloading',
        );
        await new Promise((r) => setTimeout(r, 100));
        if (!closed && watch === current) void reload().catch(() => {});
      }
    })();
  }

  await load();

  return {
    get generation() {
      return generation;
    },

    async sync(): Promise<number> {
      const target = await store.revision();
      if (applied >= target) return applied;
      const caughtUp = await new Promise<boolean>((resolve) => {
        const check = () => {
          if (applied >= target) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(true);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          resolve(applied >= target);
        }, catchUpMs);
        waiters.add(check);
      });
      if (!caughtUp) await reload();
      return applied;
    },

    get: (key) => kvs.get(key),

    range(sub: string): KeyValue[] {
      sortedKeys ??= [...kvs.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      const out: KeyValue[] = [];
      for (const key of sortedKeys) {
        if (key.startsWith(sub)) out.push(kvs.get(key) as KeyValue);
      }
      return out;
    },

    async close() {
      closed = true;
      await watch?.close();
    },
  };
}
