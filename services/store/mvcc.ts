/**
 * The embedded store's state machine: revisioned keys, leases and the event
 * history, with etcd v3 semantics. The key-value and lease state lives here;
 * the event history is mvcc-history.ts, the input checks mvcc-validate.ts.
 *
 * Pure and synchronous, like etcd-raft's core: no I/O, no timers, no clock, no
 * randomness. The same commands applied to the same state give the same state
 * and the same events, so replaying the write-ahead log after a snapshot
 * rebuilds exactly what was acknowledged. Every command validates fully and
 * throws an AmalgamError before it changes anything: a command either applies
 * whole or not at all.
 */

import { AmalgamError } from '../core/errors.ts';
import { compareKeys } from './key-order.ts';
import { deleteEvent, EventHistory } from './mvcc-history.ts';
import { invalid, requireLeaseId, validateMvccTxn, validatePrefix } from './mvcc-validate.ts';
import {
  type Compare,
  type KeyValue,
  type Op,
  type RangeOptions,
  type RangeResult,
  REQUEST_ID_RETENTION_MS,
  type TxnRequest,
  type TxnResult,
  type WatchEvent,
} from './store.ts';
import { validateKey, validateLeaseTtl } from './validate.ts';

export { compareKeys } from './key-order.ts';
export { validatePrefix } from './mvcc-validate.ts';

/**
 * A command as the write-ahead log records it. `at` is the wall-clock time
 * (ms) the driver applied it: the only clock the state machine sees, so
 * forgetting old request ids replays exactly.
 */
export type StoreCommand =
  | { op: 'txn'; txn: TxnRequest; at: number }
  | { op: 'grantLease'; id: string; ttlSeconds: number }
  | { op: 'revokeLease'; id: string }
  | { op: 'compact'; revision: number };

export interface Applied {
  /** Watch events the command produced, in the order its writes were applied. */
  events: WatchEvent[];
  /** False when the command left the state exactly as it was (nothing to log). */
  changed: boolean;
}

export interface TxnApplied extends Applied {
  result: TxnResult;
}

export interface LeaseInfo {
  id: string;
  ttlSeconds: number;
}

/** The outcome of a txn that carried a requestId, kept to answer a resend. */
export interface RememberedTxn {
  requestId: string;
  result: TxnResult;
  at: number;
}

/** The whole state as a plain JSON-able object. */
export interface MvccSnapshot {
  revision: number;
  compactRevision: number;
  /** Oldest first. */
  requests: RememberedTxn[];
  /** In key order. */
  kvs: KeyValue[];
  leases: LeaseInfo[];
  /** Events with revision >= compactRevision, in order. */
  history: WatchEvent[];
}

/** etcd's revision of an empty store: the first write gets revision 2. */
const INITIAL_REVISION = 1;

export class Mvcc {
  readonly #kvs = new Map<string, KeyValue>();
  /** Every live key in compareKeys order, for range, limit and after. */
  readonly #sortedKeys: string[] = [];
  /** Lease id -> the keys attached to it. */
  readonly #leases = new Map<string, { ttlSeconds: number; keys: Set<string> }>();
  /** requestId -> first outcome, in the order they were applied. */
  readonly #requests = new Map<string, RememberedTxn>();
  #history = new EventHistory();
  #revision = INITIAL_REVISION;

  get revision(): number {
    return this.#revision;
  }

  get compactRevision(): number {
    return this.#history.compactRevision;
  }

  get(key: string): KeyValue | undefined {
    validateKey(key, 'key');
    return this.#kvs.get(key);
  }

  range(prefix: string, options: RangeOptions = {}): RangeResult {
    validatePrefix(prefix);
    const { limit, after } = options;
    if (limit !== undefined && !(Number.isSafeInteger(limit) && limit >= 0)) {
      invalid('limit must be a non-negative integer', { field: 'limit' });
    }
    if (after !== undefined && typeof after !== 'string') {
      invalid('after must be a string', { field: 'after' });
    }
    let start = this.#lowerBound(prefix);
    if (after !== undefined && compareKeys(after, prefix) >= 0) {
      start = this.#lowerBound(after);
      if (this.#sortedKeys[start] === after) start++;
    }
    const kvs: KeyValue[] = [];
    let more = false;
    for (let i = start; i < this.#sortedKeys.length; i++) {
      const key = this.#sortedKeys[i] as string;
      if (!key.startsWith(prefix)) break;
      // etcd: a limit of 0 means no limit.
      if (limit && kvs.length === limit) {
        more = true;
        break;
      }
      kvs.push(this.#kvs.get(key) as KeyValue);
    }
    return { kvs, revision: this.#revision, more };
  }

  hasLease(id: string): boolean {
    return this.#leases.has(id);
  }

  leases(): LeaseInfo[] {
    return [...this.#leases].map(([id, lease]) => ({ id, ttlSeconds: lease.ttlSeconds }));
  }

  /**
   * Events on keys starting with `prefix` with fromRevision <= revision <=
   * throughRevision, in order. Throws WATCH_COMPACTED when history before
   * fromRevision is gone (etcd: a watch may start at the compaction point,
   * not before it).
   */
  eventsSince(
    prefix: string,
    fromRevision: number,
    throughRevision = this.#revision,
  ): WatchEvent[] {
    return this.#history.eventsSince(prefix, fromRevision, throughRevision);
  }

  /** Applies a logged command; the write-ahead log replays through here. */
  apply(command: StoreCommand): Applied {
    switch (command.op) {
      case 'txn':
        return this.applyTxn(command.txn, command.at);
      case 'grantLease':
        return this.grantLease(command.id, command.ttlSeconds);
      case 'revokeLease':
        return this.revokeLease(command.id);
      case 'compact':
        return this.compact(command.revision);
      default:
        return invalid(`unknown command ${JSON.stringify((command as { op?: unknown }).op)}`);
    }
  }

  /**
   * Runs a transaction at wall-clock time `at` (ms). With at least one actual
   * change on the executed branch the revision goes up by exactly one and
   * every write carries it; a branch that changes nothing (no ops, or only
   * deletes of missing keys) leaves the revision alone, as etcd does.
   *
   * A txn with ops and a requestId is applied at most once: its outcome is
   * remembered for REQUEST_ID_RETENTION_MS, and a resend within that time
   * changes nothing and reports the first outcome.
   */
  applyTxn(request: TxnRequest, at = 0): TxnApplied {
    validateMvccTxn(request);
    const { requestId } = request;
    const remembered = requestId === undefined ? undefined : this.#requests.get(requestId);
    if (remembered && remembered.at >= at - REQUEST_ID_RETENTION_MS) {
      return { result: { ...remembered.result }, events: [], changed: false };
    }
    const succeeded = request.compares.every((compare) => this.#holds(compare));
    const ops = succeeded ? request.onSuccess : (request.onFailure ?? []);
    for (const op of ops) {
      if (op.type === 'put' && op.lease !== undefined && !this.#leases.has(op.lease)) {
        throw new AmalgamError('LEASE_NOT_FOUND', `lease ${op.lease}`, { lease: op.lease });
      }
    }

    // Compute every event against the state before the transaction, then
    // commit them. Validation guarantees no put overlaps another write of the
    // same branch, so only overlapping deletes need de-duplicating.
    const revision = this.#revision + 1;
    const events: WatchEvent[] = [];
    const deleted = new Set<string>();
    for (const op of ops) {
      if (op.type === 'put') {
        events.push({ type: 'put', kv: this.#nextKv(op, revision), revision });
      } else {
        for (const key of this.#keysOf(op)) {
          if (deleted.has(key)) continue;
          deleted.add(key);
          events.push(deleteEvent(key, revision));
        }
      }
    }
    const result = { succeeded, revision: events.length > 0 ? revision : this.#revision };
    // Like the etcd backend's markers: only a txn with ops is remembered.
    const remember =
      requestId !== undefined && request.onSuccess.length + (request.onFailure?.length ?? 0) > 0;
    if (events.length === 0 && !remember) return { result, events, changed: false };
    if (events.length > 0) this.#commit(revision, events);
    if (remember) this.#remember({ requestId, result: { ...result }, at });
    return { result, events, changed: true };
  }

  grantLease(id: string, ttlSeconds: number): Applied {
    requireLeaseId(id);
    validateLeaseTtl(ttlSeconds);
    if (this.#leases.has(id)) invalid(`lease ${id} already exists`, { field: 'id' });
    this.#leases.set(id, { ttlSeconds, keys: new Set() });
    return { events: [], changed: true };
  }

  /** Ends a lease and deletes its keys, in key order, all in one revision. */
  revokeLease(id: string): Applied {
    const lease = this.#leases.get(id);
    if (!lease) throw new AmalgamError('LEASE_NOT_FOUND', `lease ${id}`, { lease: id });
    const revision = this.#revision + 1;
    const events = [...lease.keys].sort(compareKeys).map((key) => deleteEvent(key, revision));
    this.#leases.delete(id);
    if (events.length > 0) this.#commit(revision, events);
    return { events, changed: true };
  }

  /**
   * Forgets the history before `revision`. Compacting to a future revision is
   * an error (as in etcd); compacting to a point already compacted changes
   * nothing (etcd refuses it, and the etcd backend reports that as success:
   * the history is gone either way).
   */
  compact(revision: number): Applied {
    if (!Number.isSafeInteger(revision) || revision < 1) {
      invalid('revision must be a positive integer', { field: 'revision' });
    }
    if (revision > this.#revision) {
      invalid(`revision ${revision} is in the future (current ${this.#revision})`, {
        field: 'revision',
      });
    }
    if (revision <= this.#history.compactRevision) return { events: [], changed: false };
    this.#history.compact(revision);
    return { events: [], changed: true };
  }

  snapshot(): MvccSnapshot {
    return {
      revision: this.#revision,
      compactRevision: this.#history.compactRevision,
      requests: [...this.#requests.values()],
      kvs: this.#sortedKeys.map((key) => this.#kvs.get(key) as KeyValue),
      leases: this.leases(),
      history: this.#history.events(),
    };
  }

  static fromSnapshot(snapshot: MvccSnapshot): Mvcc {
    const mvcc = new Mvcc();
    mvcc.#revision = snapshot.revision;
    for (const { id, ttlSeconds } of snapshot.leases) {
      mvcc.#leases.set(id, { ttlSeconds, keys: new Set() });
    }
    for (const kv of snapshot.kvs) {
      mvcc.#kvs.set(kv.key, Object.freeze({ ...kv }));
      mvcc.#sortedKeys.push(kv.key);
      if (kv.lease !== undefined) mvcc.#leases.get(kv.lease)?.keys.add(kv.key);
    }
    mvcc.#sortedKeys.sort(compareKeys);
    for (const remembered of snapshot.requests) {
      mvcc.#requests.set(remembered.requestId, remembered);
    }
    mvcc.#history = new EventHistory(snapshot.history, snapshot.compactRevision);
    return mvcc;
  }

  /**
   * Records a txn's outcome and forgets outcomes past their retention. Only
   * logged commands do this, so replay forgets exactly the same ones.
   */
  #remember(remembered: RememberedTxn): void {
    const cutoff = remembered.at - REQUEST_ID_RETENTION_MS;
    for (const [requestId, old] of this.#requests) {
      if (old.at >= cutoff) break;
      this.#requests.delete(requestId);
    }
    this.#requests.delete(remembered.requestId);
    this.#requests.set(remembered.requestId, remembered);
  }

  #holds(compare: Compare): boolean {
    const kv = this.#kvs.get(compare.key);
    if (compare.target === 'value') {
      // etcd: a value compare on a missing key is false whatever the operator.
      if (!kv) return false;
      return matches(compareKeys(kv.value, compare.value), compare.op);
    }
    const actual = kv ? kv[compare.target] : 0;
    return matches(actual - compare.value, compare.op);
  }

  #nextKv(op: Extract<Op, { type: 'put' }>, revision: number): KeyValue {
    const existing = this.#kvs.get(op.key);
    const kv: KeyValue = {
      key: op.key,
      value: op.value,
      createRevision: existing ? existing.createRevision : revision,
      modRevision: revision,
      version: existing ? existing.version + 1 : 1,
    };
    if (op.lease !== undefined) kv.lease = op.lease;
    return Object.freeze(kv);
  }

  /** Live keys a delete op covers, in key order. */
  #keysOf(op: Extract<Op, { type: 'delete' }>): string[] {
    if (!op.prefix) return this.#kvs.has(op.key) ? [op.key] : [];
    const keys: string[] = [];
    for (let i = this.#lowerBound(op.key); i < this.#sortedKeys.length; i++) {
      const key = this.#sortedKeys[i] as string;
      if (!key.startsWith(op.key)) break;
      keys.push(key);
    }
    return keys;
  }

  #commit(revision: number, events: WatchEvent[]): void {
    this.#revision = revision;
    for (const event of events) {
      const key = event.kv.key;
      const previous = this.#kvs.get(key);
      if (previous?.lease !== undefined) this.#leases.get(previous.lease)?.keys.delete(key);
      if (event.type === 'put') {
        if (!previous) this.#sortedKeys.splice(this.#lowerBound(key), 0, key);
        this.#kvs.set(key, event.kv);
        if (event.kv.lease !== undefined) this.#leases.get(event.kv.lease)?.keys.add(key);
      } else {
        this.#sortedKeys.splice(this.#lowerBound(key), 1);
        this.#kvs.delete(key);
      }
    }
    this.#history.append(events);
  }

  /** Index of the first key >= `key`. */
  #lowerBound(key: string): number {
    let lo = 0;
    let hi = this.#sortedKeys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareKeys(this.#sortedKeys[mid] as string, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

function matches(difference: number, op: Compare['op']): boolean {
  switch (op) {
    case '==':
      return difference === 0;
    case '!=':
      return difference !== 0;
    case '<':
      return difference < 0;
    case '>':
      return difference > 0;
  }
}
