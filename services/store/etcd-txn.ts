/**
 * Translation between the Store contract and etcd's wire shapes, and the
 * marker-guarded txn that makes a resend apply at most once. Pure: no client,
 * no I/O.
 *
 * A writing txn is sent as
 *
 *     if version(marker) == 0
 *     then txn(user compares, user success + put marker="s", user failure + put marker="f")
 *     else get marker
 *
 * so a resend of an already applied txn reads back which branch won.
 */
import {
  Range as EtcdRange,
  type ICompare,
  type IKeyValue,
  type IRequestOp,
  type IResponseOp,
  type ITxnRequest,
  type ITxnResponse,
} from 'etcd3';
import type { Compare, KeyValue, Op, TxnRequest, TxnResult } from './store.ts';
import { INTERNAL_PREFIX } from './validate.ts';

/** Where txn markers live: internal keys, hidden from ranges and watches. */
export const MARKER_PREFIX = `${INTERNAL_PREFIX}txn/`;
/** Range of every user key: everything from "\x01" to the end of the keyspace. */
export const ALL_USER_KEYS = { key: Buffer.from('\x01'), range_end: Buffer.from('\0') };

export function prefixRange(prefix: string): { key: Buffer; range_end: Buffer } {
  if (prefix === '') return ALL_USER_KEYS;
  const range = EtcdRange.prefix(prefix);
  return { key: range.start, range_end: range.end };
}

export function fromEtcdKv(kv: IKeyValue): KeyValue {
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

export function toEtcdTxn(request: TxnRequest): ITxnRequest {
  return {
    compare: request.compares.map(toEtcdCompare),
    success: request.onSuccess.map(toEtcdOp),
    failure: (request.onFailure ?? []).map(toEtcdOp),
  };
}

/**
 * The user's txn wrapped in its marker guard. `markerLease` keeps the marker
 * alive; `explicitId` (the caller chose the request id) marks even a branch
 * that writes nothing, so its outcome is kept to answer a resend.
 */
export function markerGuardedTxn(
  request: TxnRequest,
  marker: string,
  markerLease: string,
  explicitId: boolean,
): ITxnRequest {
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
  return {
    compare: [{ key: markerKey, target: 'Version', result: 'Equal', version: 0 }],
    success: [{ request_txn: inner }],
    failure: [{ request_range: { key: markerKey } }],
  };
}

/** The user's outcome from the reply to a markerGuardedTxn. */
export function settledResult(res: ITxnResponse): TxnResult {
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
