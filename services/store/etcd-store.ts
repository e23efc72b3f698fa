/**
 * The etcd backend: the Store contract on a real etcd cluster (the Raft engine;
 * amalgam never implements consensus itself).
 *
 * Two things the plain etcd3 client gets wrong for a control plane, and how
 * this backend settles them:
 *
 * 1. Ambiguous outcomes. A txn whose reply is lost (connection reset, deadline)
 *    may have committed. Re-sending it blindly makes a CAS "lose" to its own
 *    write. Every writing txn here carries a request id and is sent as
 *
 *        if version(marker) == 0
 *        then txn(user compares, user success + put marker="s", user failure + put marker="f")
 *        else get marker
 *
 *    so a re-send applies at most once, and a re-send of an already applied
 *    txn reads back which branch won. The caller is never told it lost what
 *    it won, or won what it lost. Markers live under the reserved prefix
 *    "\0txn/" on a shared lease, and expire on their own.
 *
 * 2. Lease loss. The etcd3 client reports a lost lease only after about twice
 *    the TTL. Here a lease is presumed lost exactly TTL after the send time of
 *    the last renewal the server acknowledged, which is no later than the
 *    server itself can expire it.
 *
 * The client's own retry and circuit-breaker policies are disabled: every
 * retry decision is taken here, where it is known to be safe.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { noop as noopPolicy } from 'cockatiel';
import {
  ClientClosedError,
  Etcd3,
  EtcdLeaseInvalidError,
  Range as EtcdRange,
  GRPCInvalidArgumentError,
  type ICompare,
  type IKeyValue,
  type IRequestOp,
  type IResponseOp,
  type ITxnRequest,
  type IWatchResponse,
} from 'etcd3';
import { AmalgamError, isAmalgamError } from '../core/errors.ts';
import type {
  Compare,
  KeyValue,
  Lease,
  LeaseOptions,
  Op,
  RangeOptions,
  RangeResult,
  Store,
  TxnRequest,
  TxnResult,
  Watch,
  WatchEvent,
  WatchOptions,
} from './store.ts';
import { INTERNAL_PREFIX, validateKey, validateLeaseTtl, validateTxn } from './validate.ts';
import { WatchStream } from './watch-stream.ts';

export interface EtcdStoreOptions {
  /** Client URLs of the etcd members, e.g. ["http://127.0.0.1:2379"]. */
  endpoints: string[];
  /** Deadline of one attempt of one call (ms). Default 2000. */
  attemptTimeoutMs?: number;
  /** Time after which an operation that found no quorum fails with NO_QUORUM (ms). Default 6000. */
  operationTimeoutMs?: number;
  /**
   * TTL of the lease that keeps txn markers alive (s). Default 600. A lease is
   * used for new markers during its first half only, so a marker lives at
   * least TTL/2 = REQUEST_ID_RETENTION_MS.
   */
  markerTtlSeconds?: number;
}

const MARKER_PREFIX = `${INTERNAL_PREFIX}txn/`;
/** Range of every user key: everything from "\x01" to the end of the keyspace. */
const ALL_USER_KEYS = { key: Buffer.from('\x01'), range_end: Buffer.from('\0') };

type Attempt<T> = (deadline: Date) => Promise<T>;

export class EtcdStore implements Store {
  readonly backend = 'etcd' as const;
  private readonly client: Etcd3;
  private readonly attemptTimeoutMs: number;
  private readonly operationTimeoutMs: number;
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
    this.attemptTimeoutMs = options.attemptTimeoutMs ?? 2000;
    this.operationTimeoutMs = options.operationTimeoutMs ?? 6000;
    this.markerTtlSeconds = options.markerTtlSeconds ?? 600;
    this.client = new Etcd3({
      hosts: options.endpoints,
      dialTimeout: this.attemptTimeoutMs,
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
      try {
        return await this.settledTxn(request, marker, markerLease, request.requestId !== undefined);
      } catch (err) {
        // The write may sit in a minority's log and commit when the quorum returns:
        // hand the caller the id that settles it.
        if (isAmalgamError(err, 'NO_QUORUM')) {
          throw new AmalgamError(
            'NO_QUORUM',
            err.message.replace(/^[^:]*: /, ''),
            {
              ...err.details,
              requestId,
              outcome: 'unknown',
            },
            { cause: err.cause },
          );
        }
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

  private async settledTxn(
    request: TxnRequest,
    marker: string,
    markerLease: string,
    explicitId: boolean,
  ): Promise<TxnResult> {
    const markerKey = Buffer.from(marker);
    const inner = toEtcdTxn(request);
    const putMarker = (branch: 's' | 'f'): IRequestOp => ({
      request_put: { key: markerKey, value: Buffer.from(branch), lease: markerLease },
    });
    // A branch that writes nothing is a no-op: evaluating it again on a resend
    // is indistinguishable from the first time, so it needs no marker (and so
    // costs no revision) unless the caller asked for the outcome to be kept.
    if (request.onSuccess.length > 0 || explicitId) {
      inner.success = [...(inner.success ?? []), putMarker('s')];
    }
    if ((request.onFailure?.length ?? 0) > 0 || explicitId) {
      inner.failure = [...(inner.failure ?? []), putMarker('f')];
    }
    const outer: ITxnRequest = {
      compare: [{ key: markerKey, target: 'Version', result: 'Equal', version: 0 }],
      success: [{ request_txn: inner }],
      failure: [{ request_range: { key: markerKey } }],
    };
    const res = await this.retrying('txn', (deadline) => this.client.kv.txn(outer, { deadline }));
    if (res.succeeded) {
      const innerRes = (res.responses[0] as IResponseOp | undefined)?.response_txn;
      if (!innerRes) throw new Error('etcd answered a nested txn without its inner response');
      return { succeeded: innerRes.succeeded, revision: Number(res.header.revision) };
    }
    // An earlier attempt of this very request committed; its marker says which branch won.
    const found = res.responses[0]?.response_range?.kvs[0];
    if (!found) throw new Error('etcd answered a failed marker compare without the marker');
    return { succeeded: found.value.toString() === 's', revision: Number(found.mod_revision) };
  }

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
      if (isAmalgamError(err, 'INVALID_ARGUMENT') && /future revision/.test(err.message))
        return false;
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

  /**
   * Runs `attempt` until it gives a definite answer. Only call this with
   * attempts that are safe to repeat (reads, marker-guarded txns, id-chosen
   * grants, keep-alives, revokes). Transient failures are retried with
   * back-off on another endpoint until the operation timeout, then NO_QUORUM.
   */
  private async retrying<T>(operation: string, attempt: Attempt<T>): Promise<T> {
    this.assertOpen();
    const giveUpAt = Date.now() + this.operationTimeoutMs;
    let backoffMs = 25;
    let lastError: unknown;
    for (let n = 1; ; n++) {
      const deadline = new Date(Math.min(Date.now() + this.attemptTimeoutMs, giveUpAt));
      try {
        return await attempt(deadline);
      } catch (err) {
        const definite = definiteError(err);
        if (definite) throw definite;
        if (this.closed) throw new AmalgamError('STORE_CLOSED');
        lastError = err;
      }
      const remaining = giveUpAt - Date.now();
      if (remaining <= 0) {
        throw new AmalgamError(
          'NO_QUORUM',
          `${operation} found no quorum after ${n} attempts: ${(lastError as Error)?.message}`,
          { operation, attempts: n },
          { cause: lastError },
        );
      }
      await sleep(Math.min(backoffMs, remaining));
      backoffMs = Math.min(backoffMs * 2, 400);
    }
  }
}

/**
 * Errors that are answers, not failures to get one: the request was refused
 * before it applied, so retrying cannot help. Returns undefined for transient
 * errors (unavailable, deadline, no leader, timed out, reset).
 */
function definiteError(err: unknown): AmalgamError | undefined {
  if (isAmalgamError(err)) return err;
  if (err instanceof ClientClosedError) return new AmalgamError('STORE_CLOSED');
  const message = String((err as Error)?.message ?? err);
  if (err instanceof EtcdLeaseInvalidError || /requested lease not found/.test(message)) {
    return new AmalgamError('LEASE_NOT_FOUND', message);
  }
  if (/required revision has been compacted/.test(message)) {
    return new AmalgamError('WATCH_COMPACTED', message);
  }
  if (
    err instanceof GRPCInvalidArgumentError ||
    /duplicate key|too many operations|key is not provided|future revision/.test(message)
  ) {
    return new AmalgamError('INVALID_ARGUMENT', message);
  }
  return undefined;
}

class EtcdLease implements Lease {
  readonly lost: Promise<Error>;
  private resolveLost!: (err: Error) => void;
  private expiryTimer: NodeJS.Timeout | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly store: EtcdStore,
    readonly id: string,
    readonly ttlSeconds: number,
    grantSentAt: number,
    keepAlive: boolean,
  ) {
    this.lost = new Promise((resolve) => {
      this.resolveLost = resolve;
    });
    this.armExpiry(grantSentAt);
    if (keepAlive) this.scheduleRenewal(this.renewIntervalMs());
  }

  private renewIntervalMs(): number {
    return Math.max(100, (this.ttlSeconds * 1000) / 3);
  }

  /** The server restarts the TTL when it receives a renewal, so sentAt + TTL is a safe bound. */
  private armExpiry(sentAt: number): void {
    clearTimeout(this.expiryTimer);
    const ms = Math.max(0, sentAt + this.ttlSeconds * 1000 - Date.now());
    this.expiryTimer = setTimeout(
      () =>
        this.markLost(
          new AmalgamError('LEASE_NOT_FOUND', `lease ${this.id} not renewed within its TTL`),
        ),
      ms,
    );
  }

  private scheduleRenewal(ms: number): void {
    if (this.stopped) return;
    this.renewTimer = setTimeout(() => {
      this.keepAliveOnce().then(
        () => this.scheduleRenewal(this.renewIntervalMs()),
        () => this.scheduleRenewal(Math.min(500, this.renewIntervalMs())),
      );
    }, ms);
  }

  async keepAliveOnce(): Promise<void> {
    if (this.stopped) throw new AmalgamError('LEASE_NOT_FOUND', `lease ${this.id} is lost`);
    const sentAt = Date.now();
    const ttl = await this.store.renewLease(this.id);
    if (ttl <= 0) {
      const err = new AmalgamError(
        'LEASE_NOT_FOUND',
        `lease ${this.id} has expired or was revoked`,
      );
      this.markLost(err);
      throw err;
    }
    if (!this.stopped) this.armExpiry(sentAt);
  }

  async revoke(): Promise<void> {
    this.stop();
    await this.store.revokeLease(this.id);
    this.markLost(new AmalgamError('LEASE_NOT_FOUND', `lease ${this.id} was revoked`));
  }

  private markLost(err: Error): void {
    this.stop();
    this.resolveLost(err);
  }

  /** @internal the store is closing: nothing guards this lease any more. */
  closed(): void {
    this.markLost(new AmalgamError('STORE_CLOSED', `lease ${this.id} abandoned on close`));
  }

  /** @internal stop timers. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.renewTimer);
    clearTimeout(this.expiryTimer);
  }
}

/**
 * An etcd watch as a WatchStream (the same queue the embedded store uses).
 * The etcd3 watch manager reconnects and resumes from the last revision by
 * itself; this adds hiding of internal keys and a clear WATCH_COMPACTED.
 */
class EtcdWatch extends WatchStream {
  private watcher: Awaited<ReturnType<ReturnType<Etcd3['watch']>['create']>> | undefined;
  private closing = false;
  /** Where this watch would resume: after the last event it received. */
  private nextRevision: number | undefined;
  /** Resolves when the watch ends, for whatever reason. */
  readonly done: Promise<void>;

  constructor(
    private readonly store: EtcdStore,
    client: Etcd3,
    prefix: string,
    fromRevision: number | undefined,
  ) {
    let resolveDone!: () => void;
    super(() => {
      resolveDone();
      void this.cancelWatcher();
    });
    this.done = new Promise((resolve) => {
      resolveDone = resolve;
    });
    this.nextRevision = fromRevision;
    const bounds = prefixRange(prefix);
    let builder = client.watch().inRange(new EtcdRange(bounds.key, bounds.range_end));
    if (fromRevision !== undefined) builder = builder.startRevision(String(fromRevision));
    builder.create().then(
      (watcher) => {
        this.watcher = watcher;
        watcher.on('data', (res: IWatchResponse) => this.onData(res));
        watcher.on('error', (err: Error) => void this.onError(err));
        if (this.closing) void watcher.cancel();
      },
      (err: unknown) => void this.onError(err as Error),
    );
  }

  private onData(res: IWatchResponse): void {
    const events: WatchEvent[] = [];
    for (const ev of res.events) {
      if (ev.kv.key.toString().startsWith(INTERNAL_PREFIX)) continue;
      const kv = fromEtcdKv(ev.kv);
      this.nextRevision = kv.modRevision + 1;
      events.push({ type: ev.type === 'Delete' ? 'delete' : 'put', kv, revision: kv.modRevision });
    }
    this.push(events);
  }

  private async onError(err: Error): Promise<void> {
    if (this.closing) return;
    // etcd cancels a watch whose start revision was compacted; say so plainly.
    try {
      const from = this.nextRevision ?? 1;
      if (/compact/i.test(err.message) || (await this.store.isCompacted(from))) {
        this.fail(new AmalgamError('WATCH_COMPACTED', `revision ${from}`, { fromRevision: from }));
        return;
      }
    } catch (probeErr) {
      this.fail(probeErr);
      return;
    }
    this.fail(err);
  }

  private async cancelWatcher(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await this.watcher?.cancel().catch(() => {});
  }
}

function prefixRange(prefix: string): { key: Buffer; range_end: Buffer } {
  if (prefix === '') return ALL_USER_KEYS;
  const range = EtcdRange.prefix(prefix);
  return { key: range.start, range_end: range.end };
}

function fromEtcdKv(kv: IKeyValue): KeyValue {
  const out: KeyValue = {
    key: kv.key.toString(),
    value: kv.value.toString(),
    createRevision: Number(kv.create_revision),
    modRevision: Number(kv.mod_revision),
    version: Number(kv.version),
  };
  if (kv.lease && kv.lease !== '0') out.lease = String(kv.lease);
  return out;
}

const TARGETS = {
  value: 'Value',
  version: 'Version',
  createRevision: 'Create',
  modRevision: 'Mod',
} as const;
const RESULTS = { '==': 'Equal', '!=': 'NotEqual', '<': 'Less', '>': 'Greater' } as const;

function toEtcdCompare(c: Compare): ICompare {
  const base = {
    key: Buffer.from(c.key),
    target: TARGETS[c.target],
    result: RESULTS[c.op],
  } as const;
  switch (c.target) {
    case 'value':
      return { ...base, value: Buffer.from(c.value) };
    case 'version':
      return { ...base, version: c.value };
    case 'createRevision':
      return { ...base, create_revision: c.value };
    case 'modRevision':
      return { ...base, mod_revision: c.value };
  }
}

function toEtcdOp(op: Op): IRequestOp {
  if (op.type === 'put') {
    return {
      request_put: { key: Buffer.from(op.key), value: Buffer.from(op.value), lease: op.lease ?? 0 },
    };
  }
  if (op.prefix) {
    const r = prefixRange(op.key);
    return { request_delete_range: { key: r.key, range_end: r.range_end } };
  }
  return { request_delete_range: { key: Buffer.from(op.key) } };
}

function toEtcdTxn(request: TxnRequest): ITxnRequest {
  return {
    compare: request.compares.map(toEtcdCompare),
    success: request.onSuccess.map(toEtcdOp),
    failure: (request.onFailure ?? []).map(toEtcdOp),
  };
}

/** A positive int63 as a decimal string: etcd lease ids are int64 and 0 means "choose one". */
function randomLeaseId(): string {
  const n = randomBytes(8).readBigUInt64BE() >> 2n;
  return (n === 0n ? 1n : n).toString();
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function openEtcdStore(options: EtcdStoreOptions): Store {
  return new EtcdStore(options);
}
