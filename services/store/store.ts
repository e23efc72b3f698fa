/**
 * The Store contract: the only way any amalgam service touches cluster state.
 *
 * It is deliberately etcd's data model (revisioned keys, compare-and-swap
 * transactions, leases, watches from a revision) so that the embedded backend
 * and the etcd backend are interchangeable and one contract suite
 * (test/contract) holds both to the same behaviour.
 *
 * Keys and values are UTF-8 strings: amalgam stores JSON documents.
 */

/** A key as it is stored, with the revisions that make compare-and-swap possible. */
export interface KeyValue {
  key: string;
  value: string;
  /** Store revision of the write that created this key (since its last delete). */
  createRevision: number;
  /** Store revision of the last write to this key. */
  modRevision: number;
  /** Number of writes since the key was created; 0 means "does not exist" in compares. */
  version: number;
  /** Lease id the key is attached to, if any. */
  lease?: string;
}

export type CompareTarget = 'value' | 'version' | 'createRevision' | 'modRevision';
export type CompareOp = '==' | '!=' | '<' | '>';

/**
 * One condition of a transaction. A missing key has version, createRevision
 * and modRevision 0 and matches no value compare (etcd semantics).
 */
export type Compare =
  | { key: string; target: 'value'; op: CompareOp; value: string }
  | {
      key: string;
      target: 'version' | 'createRevision' | 'modRevision';
      op: CompareOp;
      value: number;
    };

export type Op =
  | { type: 'put'; key: string; value: string; lease?: string }
  /** Deletes one key, or with `prefix: true` every key starting with `key`. */
  | { type: 'delete'; key: string; prefix?: boolean };

export interface TxnRequest {
  compares: readonly Compare[];
  onSuccess: readonly Op[];
  onFailure?: readonly Op[];
  /**
   * Makes the txn idempotent: a txn sent again with the same id (for at least
   * REQUEST_ID_RETENTION_MS after the first) is applied at most once and
   * reports the outcome of the first application. A write refused with NO_QUORUM may
   * still apply once the quorum returns; resending it with the requestId from
   * the error's details settles which. Default: a fresh id per call.
   */
  requestId?: string;
}

/** How long both backends remember a txn's requestId at the least. */
export const REQUEST_ID_RETENTION_MS = 5 * 60 * 1000;

export interface TxnResult {
  /** True when every compare held and `onSuccess` was applied. */
  succeeded: boolean;
  /** Store revision after the transaction (the revision of its writes, if any). */
  revision: number;
}

export interface RangeOptions {
  /** At most this many keys, in key order. */
  limit?: number;
  /** Keys strictly after this one (for paging). */
  after?: string;
}

export interface RangeResult {
  kvs: KeyValue[];
  /** Store revision the range was read at. */
  revision: number;
  /** True when `limit` cut the result. */
  more: boolean;
}

export interface WatchEvent {
  type: 'put' | 'delete';
  /** For a delete: the key with value '' and modRevision = the delete's revision. */
  kv: KeyValue;
  revision: number;
}

export interface WatchOptions {
  /** Deliver every change with revision >= fromRevision; default: changes after now. */
  fromRevision?: number;
}

/**
 * A running watch. Iterate it to receive events in revision order. Iteration
 * throws an AmalgamError (code WATCH_COMPACTED) when `fromRevision` is older than
 * the store's compaction point: the caller must re-list and watch again.
 */
export interface Watch extends AsyncIterable<WatchEvent> {
  close(): Promise<void>;
}

export interface LeaseOptions {
  /**
   * Renew the lease automatically every ttl/3 (default true). A lease that is
   * not kept alive expires after its TTL and its keys vanish.
   */
  keepAlive?: boolean;
}

/**
 * A lease with a TTL. Keys put with `lease: lease.id` are deleted when it
 * expires or is revoked.
 */
export interface Lease {
  readonly id: string;
  readonly ttlSeconds: number;
  /**
   * Resolves (never rejects) once the lease is known or presumed lost: revoked
   * by someone else, expired, or not renewed within its TTL. The caller must
   * then stop acting on anything the lease guarded (fencing). Reported no
   * later than the TTL after the last successful renewal was sent.
   */
  readonly lost: Promise<Error>;
  keepAliveOnce(): Promise<void>;
  revoke(): Promise<void>;
}

export interface Store {
  readonly backend: 'embedded' | 'etcd';
  get(key: string): Promise<KeyValue | undefined>;
  range(prefix: string, options?: RangeOptions): Promise<RangeResult>;
  txn(request: TxnRequest): Promise<TxnResult>;
  grantLease(ttlSeconds: number, options?: LeaseOptions): Promise<Lease>;
  watch(prefix: string, options?: WatchOptions): Watch;
  /** Current revision of the store. */
  revision(): Promise<number>;
  /** Forget history older than `revision`; watches from before it fail with WATCH_COMPACTED. */
  compact(revision: number): Promise<void>;
  close(): Promise<void>;
}

/** Shorthand for the commonest write: put unconditionally. */
export async function put(
  store: Store,
  key: string,
  value: string,
  lease?: string,
): Promise<number> {
  const op: Op =
    lease === undefined ? { type: 'put', key, value } : { type: 'put', key, value, lease };
  const result = await store.txn({ compares: [], onSuccess: [op] });
  return result.revision;
}
