/**
 * The `embedded` Store backend: one process, state in memory, durability from
 * a write-ahead log plus snapshots (like k3s on SQLite, for one machine).
 *
 * The driver around the pure state machine (mvcc.ts), etcd-raft style. A write
 * is validated and applied to the state at once, in call order, which fixes
 * its result and its place in the log; it is acknowledged only once its log
 * record is fsynced. Until then nobody may see its effects: reads wait until
 * everything they could have observed is durable, and watch events are
 * published in log order as records become durable. So whatever a caller was
 * told survives a crash, and nothing else was ever shown.
 */

import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { AmalgamError, isAmalgamError } from '../core/errors.ts';
import {
  encodeSnapshot,
  type RecoveredState,
  recoverDataDir,
  segmentPath,
  writeSnapshot,
} from './data-dir.ts';
import { type DataDirLock, lockDataDir } from './data-dir-lock.ts';
import type { Applied, Mvcc, StoreCommand } from './mvcc.ts';
import { validatePrefix } from './mvcc-validate.ts';
import type {
  KeyValue,
  Lease,
  LeaseOptions,
  RangeOptions,
  RangeResult,
  Store,
  TxnRequest,
  TxnResult,
  Watch,
  WatchEvent,
  WatchOptions,
} from './store.ts';
import { validateLeaseTtl } from './validate.ts';
import { DEFAULT_MAX_RECORD_BYTES, encodeRecord, type StoreLogger, WalWriter } from './wal.ts';
import { WatchStream } from './watch-stream.ts';

export interface EmbeddedStoreOptions {
  dataDir: string;
  /** Log records between snapshots (default 10,000). */
  snapshotEvery?: number;
  /** Largest request the log accepts, in bytes of JSON (default 16 MiB). */
  maxRecordBytes?: number;
  logger?: StoreLogger;
}

const DEFAULT_SNAPSHOT_EVERY = 10_000;

export async function openEmbeddedStore(options: EmbeddedStoreOptions): Promise<Store> {
  const snapshotEvery = options.snapshotEvery ?? DEFAULT_SNAPSHOT_EVERY;
  if (!Number.isSafeInteger(snapshotEvery) || snapshotEvery < 1) {
    throw new AmalgamError('INVALID_ARGUMENT', 'snapshotEvery must be an integer >= 1', {
      field: 'snapshotEvery',
    });
  }
  const logger = options.logger ?? consoleLogger;
  const maxRecordBytes = options.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES;
  await mkdir(options.dataDir, { recursive: true });
  const lock = await lockDataDir(options.dataDir);
  try {
    const recovered = await recoverDataDir(options.dataDir, logger, maxRecordBytes);
    return new EmbeddedStore(
      { dataDir: options.dataDir, snapshotEvery, maxRecordBytes, logger },
      lock,
      recovered,
    );
  } catch (err) {
    await lock.release();
    throw err;
  }
}

const consoleLogger: StoreLogger = {
  warn: (details, message) => console.warn(message, details),
  error: (details, message) => console.error(message, details),
};

/** A logged command whose record is not yet known to be durable. */
interface Unpublished {
  index: number;
  revision: number;
  events: WatchEvent[];
  durable: boolean;
  logged: Promise<void>;
}

interface Barrier {
  index: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

interface WatchRegistration {
  prefix: string;
  fromRevision: number;
  stream: WatchStream;
}

/** The live side of a lease: its clock, which the log does not record. */
interface LeaseClock {
  ttlMs: number;
  /** performance.now() after which the lease has expired. */
  deadline: number;
  expiry: NodeJS.Timeout;
  renewal: NodeJS.Timeout | undefined;
  settleLost: (reason: Error) => void;
}

interface Settings {
  dataDir: string;
  snapshotEvery: number;
  maxRecordBytes: number;
  logger: StoreLogger;
}

class EmbeddedStore implements Store {
  readonly backend = 'embedded' as const;
  readonly #settings: Settings;
  readonly #lock: DataDirLock;
  readonly #mvcc: Mvcc;
  #wal: WalWriter;
  /** Index of the last record handed to the log. */
  #lastIndex: number;
  #durableIndex: number;
  #durableRevision: number;
  #recordsSinceSnapshot: number;
  #snapshotting: Promise<void> | undefined;
  readonly #unpublished: Unpublished[] = [];
  #barriers: Barrier[] = [];
  readonly #watches = new Set<WatchRegistration>();
  readonly #leaseClocks = new Map<string, LeaseClock>();
  /** Set once the store stops taking requests: closed, or its log failed. */
  #stopped: AmalgamError | undefined;
  /** Set when a log write failed: nothing after it will ever be durable. */
  #logFailure: AmalgamError | undefined;
  #closing: Promise<void> | undefined;
  #lastNow = 0;

  constructor(settings: Settings, lock: DataDirLock, recovered: RecoveredState) {
    this.#settings = settings;
    this.#lock = lock;
    this.#mvcc = recovered.mvcc;
    this.#lastIndex = recovered.lastIndex;
    this.#durableIndex = recovered.lastIndex;
    this.#durableRevision = recovered.mvcc.revision;
    this.#recordsSinceSnapshot = recovered.recordsSinceSnapshot;
    this.#wal = new WalWriter(segmentPath(settings.dataDir, recovered.lastIndex + 1), {
      create: true,
    });
    // Nobody holds a recovered lease's keep-alive any more; like etcd after a
    // leader change, each gets a fresh full TTL to be renewed or expire.
    for (const lease of recovered.mvcc.leases()) {
      this.#startLeaseClock(lease.id, lease.ttlSeconds, () => undefined);
    }
  }

  get(key: string): Promise<KeyValue | undefined> {
    return this.#read(() => this.#mvcc.get(key));
  }

  range(prefix: string, options?: RangeOptions): Promise<RangeResult> {
    return this.#read(() => this.#mvcc.range(prefix, options));
  }

  revision(): Promise<number> {
    return this.#read(() => this.#mvcc.revision);
  }

  async txn(request: TxnRequest): Promise<TxnResult> {
    const at = this.#now();
    const applied = await this.#execute({ op: 'txn', txn: request, at }, () =>
      this.#mvcc.applyTxn(request, at),
    );
    return applied.result;
  }

  async compact(revision: number): Promise<void> {
    await this.#execute({ op: 'compact', revision }, () => this.#mvcc.compact(revision));
  }

  async grantLease(ttlSeconds: number, options: LeaseOptions = {}): Promise<Lease> {
    this.#assertOpen();
    validateLeaseTtl(ttlSeconds);
    const id = this.#newLeaseId();
    await this.#execute({ op: 'grantLease', id, ttlSeconds }, () =>
      this.#mvcc.grantLease(id, ttlSeconds),
    );
    let settleLost: (reason: Error) => void = () => undefined;
    const lost = new Promise<Error>((resolve) => {
      settleLost = resolve;
    });
    if (this.#stopped) {
      settleLost(this.#stopped);
    } else {
      this.#startLeaseClock(id, ttlSeconds, settleLost);
      if (options.keepAlive ?? true) this.#keepRenewing(id, ttlSeconds);
    }
    return {
      id,
      ttlSeconds,
      lost,
      keepAliveOnce: async () => {
        this.#assertOpen();
        this.#renew(id);
      },
      revoke: async () => {
        try {
          await this.#revokeLease(id, 'revoked');
        } catch (err) {
          // Already expired or revoked: the lease is gone either way.
          if (!isAmalgamError(err, 'LEASE_NOT_FOUND')) throw err;
        }
      },
    };
  }

  /**
   * Bad input and a closed store throw here; a compacted start revision
   * surfaces on iteration (as on the etcd backend, where only the server
   * knows it).
   */
  watch(prefix: string, options: WatchOptions = {}): Watch {
    validatePrefix(prefix);
    this.#assertOpen();
    const fromRevision = options.fromRevision ?? this.#durableRevision + 1;
    if (!Number.isSafeInteger(fromRevision) || fromRevision < 1) {
      throw new AmalgamError('INVALID_ARGUMENT', 'fromRevision must be an integer >= 1', {
        field: 'fromRevision',
      });
    }
    const registration: WatchRegistration = {
      prefix,
      fromRevision,
      stream: new WatchStream(() => this.#watches.delete(registration)),
    };
    const { stream } = registration;
    try {
      // History up to what is durable now; later events arrive as their
      // records become durable (#publishDurable), so there is no gap.
      stream.push(this.#mvcc.eventsSince(prefix, fromRevision, this.#durableRevision));
    } catch (err) {
      stream.fail(err);
      return stream;
    }
    this.#watches.add(registration);
    return stream;
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  /** Answers from the state now, once everything that state reflects is durable. */
  async #read<T>(read: () => T): Promise<T> {
    this.#assertOpen();
    const value = read();
    await this.#whenDurable(this.#lastIndex);
    return value;
  }

  /**
   * Applies a command, logs it if it changed anything, and resolves once the
   * record is durable. Bad input throws before anything changes.
   */
  async #execute<T extends Applied>(command: StoreCommand, apply: () => T): Promise<T> {
    this.#assertOpen();
    // Encoding first: a request too large for the log must not be applied.
    const record = encodeRecord(command, this.#settings.maxRecordBytes);
    const applied = apply();
    if (!applied.changed) {
      await this.#whenDurable(this.#lastIndex);
      return applied;
    }
    const index = ++this.#lastIndex;
    const entry: Unpublished = {
      index,
      revision: this.#mvcc.revision,
      events: applied.events,
      durable: false,
      logged: this.#wal.append(record),
    };
    this.#unpublished.push(entry);
    entry.logged.then(
      () => {
        entry.durable = true;
        this.#publishDurable();
      },
      (err: unknown) => this.#failLog(err),
    );
    this.#maybeSnapshot();
    await this.#whenDurable(index);
    return applied;
  }

  #whenDurable(index: number): Promise<void> {
    if (index <= this.#durableIndex) return Promise.resolve();
    if (this.#logFailure) return Promise.reject(this.#logFailure);
    return new Promise((resolve, reject) => {
      this.#barriers.push({ index, resolve, reject });
    });
  }

  /** Publishes durable records' events in log order and releases the reads waiting on them. */
  #publishDurable(): void {
    while (this.#unpublished[0]?.durable) {
      const entry = this.#unpublished.shift() as Unpublished;
      this.#durableIndex = entry.index;
      this.#durableRevision = entry.revision;
      if (entry.events.length === 0) continue;
      for (const watch of this.#watches) {
        const matching = entry.events.filter(
          (event) => event.revision >= watch.fromRevision && event.kv.key.startsWith(watch.prefix),
        );
        if (matching.length > 0) watch.stream.push(matching);
      }
    }
    // Barriers are pushed with non-decreasing indexes.
    let released = 0;
    while (released < this.#barriers.length) {
      const barrier = this.#barriers[released] as Barrier;
      if (barrier.index > this.#durableIndex) break;
      barrier.resolve();
      released++;
    }
    if (released > 0) this.#barriers = this.#barriers.slice(released);
  }

  /**
   * The log could not be written: the state is now ahead of the disk, so the
   * store stops. Nothing after the failure is acknowledged.
   */
  #failLog(err: unknown): void {
    if (this.#logFailure) return;
    this.#settings.logger.error({ err }, 'write-ahead log failed; the store stops');
    const stopped = new AmalgamError(
      'STORE_CLOSED',
      'the write-ahead log failed',
      {},
      { cause: err },
    );
    this.#logFailure = stopped;
    this.#stopped = stopped;
    for (const barrier of this.#barriers) barrier.reject(stopped);
    this.#barriers = [];
    for (const watch of this.#watches) watch.stream.fail(stopped);
    void this.close();
  }

  /**
   * Every `snapshotEvery` records: capture the state at this log index, switch
   * new records to a segment that starts right after it, and once every
   * earlier record is durable write the snapshot and drop the old files.
   */
  #maybeSnapshot(): void {
    this.#recordsSinceSnapshot++;
    if (this.#recordsSinceSnapshot < this.#settings.snapshotEvery || this.#snapshotting) return;
    const { dataDir, logger } = this.#settings;
    const index = this.#lastIndex;
    const body = encodeSnapshot(index, this.#mvcc);
    const earlierDurable = this.#wal.close();
    this.#wal = new WalWriter(segmentPath(dataDir, index + 1), {
      create: true,
      after: earlierDurable,
    });
    this.#recordsSinceSnapshot = 0;
    this.#snapshotting = earlierDurable
      .then(() => writeSnapshot(dataDir, index, body))
      .catch((err: unknown) => {
        // Not fatal: the segments hold every record until a snapshot succeeds.
        logger.error({ err, index }, 'snapshot failed');
      })
      .finally(() => {
        this.#snapshotting = undefined;
      });
  }

  /** Wall-clock ms for logged commands, never going backwards within a run. */
  #now(): number {
    this.#lastNow = Math.max(this.#lastNow, Date.now());
    return this.#lastNow;
  }

  #newLeaseId(): string {
    for (;;) {
      // A positive int64, like etcd's lease ids.
      const id = (randomBytes(8).readBigUInt64BE() >> 1n).toString();
      if (id !== '0' && !this.#mvcc.hasLease(id)) return id;
    }
  }

  #startLeaseClock(id: string, ttlSeconds: number, settleLost: (reason: Error) => void): void {
    const ttlMs = ttlSeconds * 1000;
    const clock: LeaseClock = {
      ttlMs,
      deadline: performance.now() + ttlMs,
      expiry: setTimeout(() => this.#checkExpiry(id), ttlMs),
      renewal: undefined,
      settleLost,
    };
    this.#leaseClocks.set(id, clock);
  }

  #keepRenewing(id: string, ttlSeconds: number): void {
    const clock = this.#leaseClocks.get(id);
    if (!clock) return;
    clock.renewal = setInterval(
      () => {
        if (this.#leaseClocks.has(id)) this.#renew(id);
      },
      (ttlSeconds * 1000) / 3,
    );
  }

  #renew(id: string): void {
    const clock = this.#leaseClocks.get(id);
    if (!clock || !this.#mvcc.hasLease(id)) {
      throw new AmalgamError('LEASE_NOT_FOUND', `lease ${id}`, { lease: id });
    }
    // The expiry timer re-arms itself from the deadline when it fires.
    clock.deadline = performance.now() + clock.ttlMs;
  }

  #checkExpiry(id: string): void {
    const clock = this.#leaseClocks.get(id);
    if (!clock) return;
    const remaining = clock.deadline - performance.now();
    if (remaining > 0) {
      clock.expiry = setTimeout(() => this.#checkExpiry(id), remaining);
      return;
    }
    this.#revokeLease(id, 'expired').catch((err: unknown) => {
      if (!(err instanceof AmalgamError && err.code === 'STORE_CLOSED')) {
        this.#settings.logger.error({ err, lease: id }, 'could not expire lease');
      }
    });
  }

  /** Revokes a lease (deleting its keys in one revision) and tells its holder. */
  async #revokeLease(id: string, why: 'revoked' | 'expired'): Promise<void> {
    await this.#execute({ op: 'revokeLease', id }, () => {
      const applied = this.#mvcc.revokeLease(id);
      this.#stopLeaseClock(
        id,
        new AmalgamError('LEASE_NOT_FOUND', `lease ${id} ${why}`, { lease: id }),
      );
      return applied;
    });
  }

  #stopLeaseClock(id: string, reason: Error): void {
    const clock = this.#leaseClocks.get(id);
    if (!clock) return;
    clearTimeout(clock.expiry);
    clearInterval(clock.renewal);
    this.#leaseClocks.delete(id);
    clock.settleLost(reason);
  }

  #assertOpen(): void {
    if (this.#stopped) throw this.#stopped;
  }

  async #shutdown(): Promise<void> {
    const closed = new AmalgamError('STORE_CLOSED');
    this.#stopped ??= closed;
    // Holders can no longer renew: their leases are as good as lost.
    for (const id of [...this.#leaseClocks.keys()]) this.#stopLeaseClock(id, this.#stopped);
    try {
      await this.#wal.close();
      await Promise.allSettled(this.#unpublished.map((entry) => entry.logged));
      await this.#snapshotting;
    } catch (err) {
      // After a log failure #failLog has reported it already.
      if (!this.#logFailure) throw err;
    } finally {
      for (const watch of this.#watches) watch.stream.finish();
      await this.#lock.release();
    }
  }
}
