/**
 * Read-decide-write with compare-and-swap: the one write path of the
 * service layer.
 *
 * `decide` is given the current JSON values (and their revisions) of a set of
 * keys and returns the writes to make plus the result. The writes are
 * committed in ONE txn that holds only if none of the keys changed since they
 * were read; otherwise everything is read again and decided again, with
 * jittered back-off. `decide` must be pure (it may run several times), and may
 * throw an AmalgamError to refuse without writing anything.
 */
import { AmalgamError } from '../../core/errors.ts';
import type { Mirror } from '../../store/mirror.ts';
import type { Compare, Op, Store } from '../../store/store.ts';

export interface Current {
  /** Parsed JSON value of a key, or undefined when absent. */
  get<T>(key: string): T | undefined;
}

export interface Decision<R> {
  writes: Op[];
  result: R;
}

export interface OptimisticOptions {
  /** Give up with CONTENDED after this long (ms). Default 15000. */
  maxWaitMs?: number;
  /**
   * Read the keys from this mirror (one small quorum read to sync it) instead
   * of one store read per key. A stale value only costs a failed compare.
   */
  mirror?: Mirror;
}

export async function readJson<T>(store: Store, key: string): Promise<T | undefined> {
  const kv = await store.get(key);
  return kv === undefined ? undefined : (JSON.parse(kv.value) as T);
}

export function putJson(key: string, value: unknown, lease?: string): Op {
  const op: Op = { type: 'put', key, value: JSON.stringify(value) };
  if (lease !== undefined) op.lease = lease;
  return op;
}

export async function updateAtomically<R>(
  store: Store,
  keysToRead: readonly string[],
  decide: (current: Current) => Decision<R> | Promise<Decision<R>>,
  options: OptimisticOptions = {},
): Promise<R> {
  const giveUpAt = Date.now() + (options.maxWaitMs ?? 15000);
  let backoffMs = 2;
  for (let attempt = 1; ; attempt++) {
    const { mirror } = options;
    const kvs = mirror
      ? await mirror.sync().then(() => keysToRead.map((key) => mirror.get(key)))
      : await Promise.all(keysToRead.map((key) => store.get(key)));
    const values = new Map<string, unknown>();
    const compares: Compare[] = keysToRead.map((key, i) => {
      const kv = kvs[i];
      if (kv) values.set(key, JSON.parse(kv.value));
      return { key, target: 'modRevision', op: '==', value: kv?.modRevision ?? 0 };
    });
    const decision = await decide({ get: <T>(key: string) => values.get(key) as T | undefined });
    if (decision.writes.length === 0) return decision.result;
    const res = await store.txn({ compares, onSuccess: decision.writes });
    if (res.succeeded) return decision.result;
    if (Date.now() >= giveUpAt) {
      throw new AmalgamError('CONTENDED', `gave up after ${attempt} attempts`, {
        keys: keysToRead,
        attempts: attempt,
      });
    }
    // Full jitter keeps many writers on one key from moving in lock-step.
    await new Promise((r) => setTimeout(r, Math.random() * backoffMs));
    backoffMs = Math.min(backoffMs * 2, 200);
  }
}
