/** The etcd backend's pure parts: the marker guard, reading its reply, and the error mapping. */
import t from 'tap';
import { AmalgamError, isAmalgamError } from '../../../services/core/errors.ts';
import {
  definiteError,
  noQuorum,
  writeOutcomeUnknown,
} from '../../../services/store/etcd-errors.ts';
import {
  markerGuardedTxn,
  prefixRange,
  settledResult,
  toEtcdTxn,
} from '../../../services/store/etcd-txn.ts';
import type { TxnRequest } from '../../../services/store/store.ts';

const create: TxnRequest = {
  compares: [{ key: '/k', target: 'version', op: '==', value: 0 }],
  onSuccess: [{ type: 'put', key: '/k', value: 'v' }],
};

t.test('a write is guarded by its marker; only branches that write get a marker', async (t) => {
  const guarded = markerGuardedTxn(create, '\0txn/id', '7', false);
  t.same(guarded.compare, [
    { key: Buffer.from('\0txn/id'), target: 'Version', result: 'Equal', version: 0 },
  ]);
  const inner = guarded.success?.[0]?.request_txn;
  t.equal(inner?.success?.length, 2, 'the put and the marker');
  t.same(inner?.success?.[1]?.request_put?.value, Buffer.from('s'));
  t.equal(inner?.success?.[1]?.request_put?.lease, '7');
  t.equal(inner?.failure?.length, 0, 'an empty failure branch costs no revision');
  t.ok(guarded.failure?.[0]?.request_range, 'else: read the marker back');

  const kept = markerGuardedTxn(create, '\0txn/id', '7', true);
  t.same(
    kept.success?.[0]?.request_txn?.failure?.[0]?.request_put?.value,
    Buffer.from('f'),
    'an explicit request id keeps even a no-op outcome',
  );
});

t.test('the reply settles the outcome, first time or resend', async (t) => {
  const header = { revision: '12' };
  const first = settledResult({
    succeeded: true,
    header,
    responses: [{ response_txn: { succeeded: false, header, responses: [] } }],
  } as never);
  t.same(first, { succeeded: false, revision: 12 });
  const resend = settledResult({
    succeeded: false,
    header,
    responses: [{ response_range: { kvs: [{ value: Buffer.from('s'), mod_revision: '9' }] } }],
  } as never);
  t.same(resend, { succeeded: true, revision: 9 }, 'the marker says the first attempt won');
});

t.test('translation: compares, puts, prefix deletes', async (t) => {
  const txn = toEtcdTxn({
    compares: [{ key: '/a', target: 'modRevision', op: '<', value: 5 }],
    onSuccess: [{ type: 'delete', key: '/p/', prefix: true }],
  });
  t.same(txn.compare, [{ key: Buffer.from('/a'), target: 'Mod', result: 'Less', mod_revision: 5 }]);
  t.same(txn.success?.[0]?.request_delete_range?.range_end, prefixRange('/p/').range_end);
  t.same(prefixRange('').key, Buffer.from('\x01'), 'the empty prefix is every user key');
});

t.test('answers map to their code; transient failures to nothing', async (t) => {
  t.equal(
    definiteError(new Error('etcdserver: requested lease not found'))?.code,
    'LEASE_NOT_FOUND',
  );
  t.equal(
    definiteError(new Error('etcdserver: mvcc: required revision has been compacted'))?.code,
    'WATCH_COMPACTED',
  );
  t.equal(
    definiteError(new Error('etcdserver: duplicate key given in txn request'))?.code,
    'INVALID_ARGUMENT',
  );
  t.equal(definiteError(new Error('14 UNAVAILABLE: No connection established')), undefined);
  t.equal(
    definiteError(new Error('etcdserver: too many requests')),
    undefined,
    'overload is transient',
  );
  const own = new AmalgamError('STORE_CLOSED');
  t.equal(definiteError(own), own);
});

t.test('a write without quorum keeps its detail and carries its request id', async (t) => {
  const err = writeOutcomeUnknown(noQuorum('txn', 3, new Error('deadline')), 'req-1');
  t.ok(isAmalgamError(err, 'NO_QUORUM'));
  t.same(err.details, { operation: 'txn', attempts: 3, requestId: 'req-1', outcome: 'unknown' });
  t.match(err.message, /: txn found no quorum after 3 attempts: deadline$/);
});
