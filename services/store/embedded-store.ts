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
 *
 * This file is that write path. The log segments and snapshots are
 * embedded-log.ts, the live watches embedded-watches.ts, the lease clocks
 * embedded-leases.ts.
 */

import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { AmalgamError, isAmalgamError } from '../core/errors.ts';
import { type RecoveredState, recoverDataDir } from './data-dir.ts';
import { type DataDirLock, lockDataDir } from './data-dir-lock.ts';
import { LeaseClocks } from './embedded-leases.ts';
import { SnapshottingLog } from './embedded-log.ts';
import { WatchRegistry } from './embedded-watches.ts';
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
import { DEFAULT_MAX_RECORD_BYTES, encodeRecord, type StoreLogger } from './wal.ts';

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
  readonly #log: SnapshottingLog;
  /** Index of the last record handed to the log. */
  #lastIndex: number;
  #durableIndex: number;
  #durableRevision: number;
  readonly #unpublished: Unpublished[] = [];
  #barriers: Barrier[] = [];
  readonly #watches = new WatchRegistry();
  readonly #leaseClocks: LeaseClocks;
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
    this.#log = new SnapshottingLog(settings, recovered.lastIndex, recovered.recordsSinceSnapshot);
    this.#leaseClocks = new LeaseClocks({
      hasLease: (id) => this.#mvcc.hasLease(id),
      expire: (id) => this.#expireLease(id),
    });
    // Nobody holds a recovered lease's keep-alive any more; like etcd after a
    // leader change, each gets a fresh full TTL to be renewed or expire.
    for (const lease of recovered.mvcc.leases()) {
      this.#leaseClocks.start(lease.id, lease.ttlSeconds, () => undefined);
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
      this.#leaseClocks.start(id, ttlSeconds, settleLost);
      if (options.keepAlive ?? true) this.#leaseClocks.keepRenewing(id, ttlSeconds);
    }
    return {
      id,
      ttlSeconds,
      lost,
      keepAliveOnce: async () => {
        this.#assertOpen();
        this.#leaseClocks.renew(id);
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
    // History up to what is durable now; later events arrive as their
    // records become durable (#publishDurable), so there is no gap.
    return this.#watches.open(prefix, fromRevision, () =>
      this.#mvcc.eventsSince(prefix, fromRevision, this.#durableRevision),
    );
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
      logged: this.#log.append(record),
    };
    this.#unpublished.push(entry);
    entry.logged.then(
      () => {
        entry.durable = true;
        this.#publishDurable();
      },
      (err: unknown) => this.#failLog(err),
    );
    this.#log.appended(index, this.#mvcc);
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
      this.#watches.publish(entry.events);
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
    this.#watches.failAll(stopped);
    void this.close();
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

  /** Revokes a lease (deleting its keys in one revision) and tells its holder. */
  async #revokeLease(id: string, why: 'revoked' | 'expired'): Promise<void> {
    await this.#execute({ op: 'revokeLease', id }, () => {
      const applied = this.#mvcc.revokeLease(id);
      this.#leaseClocks.stop(
        id,
        new AmalgamError('LEASE_NOT_FOUND', `lease ${id} ${why}`, { lease: id }),
      );
      return applied;
    });
  }

  /** A lease ran past its TTL: revoke it, as etcd does. */
  #expireLease(id: string): void {
    this.#revokeLease(id, 'expired').catch((err: unknown) => {
      if (!(err instanceof AmalgamError && err.code === 'STORE_CLOSED')) {
        this.#settings.logger.error({ err, lease: id }, 'could not expire lease');
      }
    });
  }

  #assertOpen(): void {
    if (this.#stopped) throw this.#stopped;
  }

  async #shutdown(): Promise<void> {
    const closed = new AmalgamError('STORE_CLOSED');
    this.#stopped ??= closed;
    // Holders can no longer renew: their leases are as good as lost.
    this.#leaseClocks.stopAll(this.#stopped);
    try {
      await this.#log.close();
      await Promise.allSettled(this.#unpublished.map((entry) => entry.logged));
    } catch (err) {
      // After a log failure #failLog has reported it already.
      if (!this.#logFailure) throw err;
    } finally {
      this.#watches.finishAll();
      await this.#lock.release();
    }
  }
}
