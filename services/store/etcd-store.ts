/**
 * The etcd backend: the Store contract on a real etcd cluster (the Raft engine;
 * amalgam never implements consensus itself).
 *
 * Two things the plain etcd3 client gets wrong for a control plane, and how
 * this backend settles them:
 *
 * 1. Ambiguous outcomes. A txn whose reply is lost (connection reset, deadline)
 *    may have committed. Re-sending it blindly makes a CAS "lose" to its own
 *    write. Every writing txn here carries a request id and is guarded by a
 *    marker key (etcd-txn.ts), so a re-send applies at most once, and a re-send
 *    of an already applied txn reads back which branch won. The caller is never
 *    told it lost what it won, or won what it lost. Markers live under the
 *    reserved prefix "\0txn/" on a shared lease, and expire on their own.
 *
 * 2. Lease loss. The etcd3 client reports a lost lease only after about twice
 *    the TTL; etcd-lease.ts presumes it lost no later than the server can
 *    expire it.
 *
 * The client's own retry and circuit-breaker policies are disabled: every
 * retry decision is taken here (etcd-retry.ts), where it is known to be safe,
 * and etcd-errors.ts maps what the client throws onto the error catalogue.
 */
import { randomUUID } from 'node:crypto';
import { noop as noopPolicy } from 'cockatiel';
import { Etcd3 } from 'etcd3';
import { AmalgamError, isAmalgamError } from '../core/errors.ts';
import { isFutureRevision, writeOutcomeUnknown } from './etcd-errors.ts';
import { EtcdLease, randomLeaseId } from './etcd-lease.ts';
import { type Attempt, type RetryPolicy, retryUntilAnswered } from './etcd-retry.ts';
import { checkEndpointSchemes, type EtcdCredentials } from './etcd-tls.ts';
import {
  ALL_USER_KEYS,
  fromEtcdKv,
  MARKER_PREFIX,
  markerGuardedTxn,
  prefixRange,
  settledResult,
  toEtcdTxn,
} from './etcd-txn.ts';
import { EtcdWatch } from './etcd-watch.ts';
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
  WatchOptions,
} from './store.ts';
import { INTERNAL_PREFIX, validateKey, validateLeaseTtl, validateTxn } from './validate.ts';

export interface EtcdStoreOptions {
  /** Client URLs of the etcd members, e.g. ["https://127.0.0.1:2379"]. */
  endpoints: string[];
  /**
   * The etcd CA and the client certificate and key to present (etcd-tls.ts):
   * required with `https://` endpoints, refused with `http://` ones.
   */
  credentials?: EtcdCredentials;
  /** Deadline of one attempt of one call (ms). Default 2000. */
  attemptTimeoutMs?: number;
  /** Time after which an operation that found no quorum fails with NO_QUORUM (ms). Default 6000. */
  operationTimeoutMs?: number;
  /**
   * TTL of the lease that keeps txn markers alive (s). Default 600. A lease is
   * used for new markers during its first half only, so a marker lives at
   * least TTL/2 (the default keeps it for REQUEST_ID_RETENTION_MS).
   */
  markerTtlSeconds?: number;
}

export class EtcdStore implements Store {
  readonly backend = 'etcd' as const;
  private readonly client: Etcd3;
  private readonly retryPolicy: RetryPolicy;
  private readonly markerTtlSeconds: number;
  private markerLease: { id: string; grantedAt: number } | undefined;
  private markerLeasePending: Promise<string> | undefined;
  private readonly leases = new Set<EtcdLease>();
  private readonly watches = new Set<EtcdWatch>();
  private closed = false;

  constructor(options: EtcdStoreOptions) {
    if (options.endpoints.length === 0) {
      throw new AmalgamError('INVALID_ARGUMENT', 'endpoints: at least one etcd endpoint is needed');
    }
    const attemptTimeoutMs = options.attemptTimeoutMs ?? 2000;
    this.retryPolicy = {
      attemptTimeoutMs,
      operationTimeoutMs: options.operationTimeoutMs ?? 6000,
      isClosed: () => this.closed,
    };
    this.markerTtlSeconds = options.markerTtlSeconds ?? 600;
    checkEndpointSchemes(options.endpoints, options.credentials !== undefined);
    this.client = new Etcd3({
      hosts: options.endpoints,
      ...(options.credentials ? { credentials: options.credentials } : {}),
      dialTimeout: attemptTimeoutMs,
      faultHandling: { host: () => noopPolicy, global: noopPolicy },
    });
  }

  async get(key: string): Promise<KeyValue | undefined> {
    validateKey(key, 'key');
    const res = await this.retrying('get', (deadline) =>
      this.client.kv.range({ key: Buffer.from(key) }, { deadline }),
    );
    const kv = res.kvs[0];
    return kv ? fromEtcdKv(kv) : undefined;
  }

  async range(prefix: string, options: RangeOptions = {}): Promise<RangeResult> {
    if (prefix.startsWith(INTERNAL_PREFIX)) {
      throw new AmalgamError('INVALID_ARGUMENT', 'prefix: keys starting with NUL are reserved');
    }
    const bounds = prefixRange(prefix);
    const start =
      options.after !== undefined && options.after >= bounds.key.toString()
        ? Buffer.from(`${options.after}\0`)
        : bounds.key;
    const limit = options.limit ?? 0;
    const res = await this.retrying('range', (deadline) =>
      this.client.kv.range({ key: start, range_end: bounds.range_end, limit }, { deadline }),
    );
    return { kvs: res.kvs.map(fromEtcdKv), revision: Number(res.header.revision), more: res.more };
  }

  async revision(): Promise<number> {
    const res = await this.retrying('revision', (deadline) =>
      this.client.kv.range({ ...ALL_USER_KEYS, limit: 1, keys_only: true }, { deadline }),
    );
    return Number(res.header.revision);
  }

  async compact(revision: number): Promise<void> {
    try {
      await this.retrying('compact', (deadline) =>
        this.client.kv.compact({ revision, physical: true }, { deadline }),
      );
    } catch (err) {
      // Compacting to a point already compacted is a success: the history is gone either way.
      if (!isAmalgamError(err, 'WATCH_COMPACTED')) throw err;
    }
  }

  async txn(request: TxnRequest): Promise<TxnResult> {
    validateTxn(request);
    const writes = request.onSuccess.length + (request.onFailure?.length ?? 0);
    if (writes === 0) {
      // Read-only: resending cannot change anything, so plain retries are safe.
      const res = await this.retrying('txn', (deadline) =>
        this.client.kv.txn(toEtcdTxn(request), { deadline }),
      );
      return { succeeded: res.succeeded, revision: Number(res.header.revision) };
    }
    const requestId = request.requestId ?? randomUUID();
    const marker = `${MARKER_PREFIX}${requestId}`;
    for (let leaseRetry = 0; ; leaseRetry++) {
      const markerLease = await this.currentMarkerLease();
      const guarded = markerGuardedTxn(
        request,
        marker,
        markerLease,
        request.requestId !== undefined,
      );
      try {
        const res = await this.retrying('txn', (deadline) =>
          this.client.kv.txn(guarded, { deadline }),
        );
        return settledResult(res);
      } catch (err) {
        // The write may sit in a minority's log and commit when the quorum returns:
        // hand the caller the id that settles it.
        if (isAmalgamError(err, 'NO_QUORUM')) throw writeOutcomeUnknown(err, requestId);
        // A lease that vanished makes etcd reject the whole txn before applying it,
        // so trying again with a fresh marker lease is safe. A second failure means
        // the caller's own lease is gone.
        if (isAmalgamError(err, 'LEASE_NOT_FOUND') && leaseRetry === 0) {
          this.markerLease = undefined;
          continue;
        }
        throw err;
      }
    }
  }

  /** The lease for new markers: the current one during its first half, else a fresh one. */
  private currentMarkerLease(): Promise<string> {
    const lease = this.markerLease;
    if (lease && Date.now() - lease.grantedAt < (this.markerTtlSeconds * 1000) / 2) {
      return Promise.resolve(lease.id);
    }
    if (!this.markerLeasePending) {
      const grantedAt = Date.now();
      this.markerLeasePending = this.grantLeaseId(this.markerTtlSeconds)
        .then((id) => {
          this.markerLease = { id, grantedAt };
          return id;
        })
        .finally(() => {
          this.markerLeasePending = undefined;
        });
    }
    return this.markerLeasePending;
  }

  /** Grants a lease with an id chosen here, so a resent grant is recognised as our own. */
  private async grantLeaseId(ttlSeconds: number): Promise<string> {
    const id = randomLeaseId();
    let attempts = 0;
    await this.retrying('leaseGrant', async (deadline) => {
      attempts++;
      try {
        return await this.client.leaseClient.leaseGrant({ ID: id, TTL: ttlSeconds }, { deadline });
      } catch (err) {
        if (attempts > 1 && /lease already exists/.test(String((err as Error).message))) return;
        throw err;
      }
    });
    return id;
  }

  async grantLease(ttlSeconds: number, options: LeaseOptions = {}): Promise<Lease> {
    validateLeaseTtl(ttlSeconds);
    const sentAt = Date.now();
    const id = await this.grantLeaseId(ttlSeconds);
    const lease = new EtcdLease(this, id, ttlSeconds, sentAt, options.keepAlive ?? true);
    this.leases.add(lease);
    void lease.lost.then(() => this.leases.delete(lease));
    return lease;
  }

  /** @internal one renewal; returns the TTL the server granted (0: lease gone). */
  async renewLease(id: string): Promise<number> {
    return this.retrying('leaseKeepAlive', async (deadline) => {
      const stream = await this.client.leaseClient.leaseKeepAlive({ deadline });
      try {
        const reply = new Promise<number>((resolve, reject) => {
          stream.on('data', (res: { TTL: string }) => resolve(Number(res.TTL)));
          stream.on('error', reject);
          stream.on('end', () => reject(new Error('lease keep-alive stream ended')));
        });
        stream.write({ ID: id });
        return await reply;
      } finally {
        stream.end();
      }
    });
  }

  /** @internal */
  async revokeLease(id: string): Promise<void> {
    try {
      await this.retrying('leaseRevoke', (deadline) =>
        this.client.leaseClient.leaseRevoke({ ID: id }, { deadline }),
      );
    } catch (err) {
      if (!isAmalgamError(err, 'LEASE_NOT_FOUND')) throw err;
    }
  }

  watch(prefix: string, options: WatchOptions = {}): Watch {
    if (prefix.startsWith(INTERNAL_PREFIX)) {
      throw new AmalgamError('INVALID_ARGUMENT', 'prefix: keys starting with NUL are reserved');
    }
    this.assertOpen();
    const watch = new EtcdWatch(this, this.client, prefix, options.fromRevision);
    this.watches.add(watch);
    void watch.done.then(() => this.watches.delete(watch));
    return watch;
  }

  /** @internal true when `revision` is older than the compaction point. */
  async isCompacted(revision: number): Promise<boolean> {
    try {
      await this.retrying('range', (deadline) =>
        this.client.kv.range({ ...ALL_USER_KEYS, limit: 1, revision }, { deadline }),
      );
      return false;
    } catch (err) {
      if (isAmalgamError(err, 'WATCH_COMPACTED')) return true;
      if (isFutureRevision(err)) return false;
      throw err;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.watches].map((w) => w.close()));
    for (const lease of this.leases) lease.closed();
    this.client.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new AmalgamError('STORE_CLOSED');
  }

  /** retryUntilAnswered on an open store: only for attempts that are safe to repeat. */
  private async retrying<T>(operation: string, attempt: Attempt<T>): Promise<T> {
    this.assertOpen();
    return retryUntilAnswered(this.retryPolicy, operation, attempt);
  }
}

export function openEtcdStore(options: EtcdStoreOptions): Store {
  return new EtcdStore(options);
}
