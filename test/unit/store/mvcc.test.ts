import t from 'tap';
import { compareKeys, Mvcc, type StoreCommand } from '../../../services/store/mvcc.ts';
import type { Op, TxnRequest } from '../../../services/store/store.ts';

const putOp = (key: string, value: string, lease?: string): Op =>
  lease === undefined ? { type: 'put', key, value } : { type: 'put', key, value, lease };
const write = (...ops: Op[]): TxnRequest => ({ compares: [], onSuccess: ops });

t.test('an empty store is at revision 1, like etcd', async (t) => {
  const mvcc = new Mvcc();
  t.equal(mvcc.revision, 1);
  t.equal(mvcc.compactRevision, 0);
  t.equal(mvcc.get('a'), undefined);
});

t.test('compares on a missing key', async (t) => {
  const mvcc = new Mvcc();
  const holds = (compare: TxnRequest['compares'][number]) =>
    mvcc.applyTxn({ compares: [compare], onSuccess: [] }).result.succeeded;
  for (const op of ['==', '!=', '<', '>'] as const) {
    t.equal(holds({ key: 'missing', target: 'value', op, value: '' }), false, `value ${op} ''`);
  }
  for (const target of ['version', 'createRevision', 'modRevision'] as const) {
    t.equal(holds({ key: 'missing', target, op: '==', value: 0 }), true, `${target} == 0`);
    t.equal(holds({ key: 'missing', target, op: '>', value: 0 }), false, `${target} > 0`);
  }
  t.equal(mvcc.revision, 1, 'compares alone never write');
});

t.test('compares on an existing key, values ordered by bytes', async (t) => {
  const mvcc = new Mvcc();
  mvcc.applyTxn(write(putOp('k', 'b')));
  const holds = (compare: TxnRequest['compares'][number]) =>
    mvcc.applyTxn({ compares: [compare], onSuccess: [] }).result.succeeded;
  t.equal(holds({ key: 'k', target: 'value', op: '==', value: 'b' }), true);
  t.equal(holds({ key: 'k', target: 'value', op: '>', value: 'a' }), true);
  t.equal(holds({ key: 'k', target: 'value', op: '<', value: 'ba' }), true);
  t.equal(holds({ key: 'k', target: 'modRevision', op: '==', value: 2 }), true);
  t.equal(holds({ key: 'k', target: 'version', op: '!=', value: 1 }), false);
  t.equal(holds({ key: 'k', target: 'createRevision', op: '<', value: 3 }), true);
});

t.test('compareKeys is UTF-8 byte order, not UTF-16 order', async (t) => {
  // U+FF21 is EF BC A1 in UTF-8; U+1F600 is F0 9F 98 80: the emoji sorts last.
  t.ok(compareKeys('\uff21', '\u{1f600}') < 0);
  t.ok('\uff21' > '\u{1f600}', 'plain JavaScript comparison gets this wrong');
  t.ok(compareKeys('a', 'ab') < 0);
  t.equal(compareKeys('x', 'x'), 0);
});

t.test('a txn bumps the revision once; puts keep createRevision and count versions', async (t) => {
  const mvcc = new Mvcc();
  const first = mvcc.applyTxn(write(putOp('a', '1'), putOp('b', '1')));
  t.same(first.result, { succeeded: true, revision: 2 });
  t.same(
    first.events.map((e) => [e.type, e.kv.key, e.revision]),
    [
      ['put', 'a', 2],
      ['put', 'b', 2],
    ],
    'one revision for every write, events in op order',
  );
  mvcc.applyTxn(write(putOp('a', '2')));
  t.match(mvcc.get('a'), { value: '2', createRevision: 2, modRevision: 3, version: 2 });

  mvcc.applyTxn(write({ type: 'delete', key: 'a' }));
  t.equal(mvcc.get('a'), undefined);
  t.equal(mvcc.revision, 4);
  mvcc.applyTxn(write(putOp('a', '3')));
  t.match(mvcc.get('a'), { createRevision: 5, modRevision: 5, version: 1 }, 'a delete resets');
});

t.test('a txn that changes nothing does not bump the revision', async (t) => {
  const mvcc = new Mvcc();
  mvcc.applyTxn(write(putOp('a', '1')));
  const failed = mvcc.applyTxn({
    compares: [{ key: 'a', target: 'version', op: '==', value: 0 }],
    onSuccess: [putOp('a', '2')],
  });
  t.same(failed.result, { succeeded: false, revision: 2 });
  t.equal(failed.changed, false);
  const noopDelete = mvcc.applyTxn(write({ type: 'delete', key: 'missing' }));
  t.same(noopDelete.events, [], 'deleting a missing key emits no event');
  t.equal(noopDelete.changed, false);
  t.equal(mvcc.revision, 2);
  const onFailure = mvcc.applyTxn({
    compares: [{ key: 'a', target: 'value', op: '==', value: 'other' }],
    onSuccess: [],
    onFailure: [putOp('f', 'x')],
  });
  t.same(onFailure.result, { succeeded: false, revision: 3 }, 'the failure branch writes');
});

t.test(
  'prefix delete removes every key under the prefix, in key order, in one revision',
  async (t) => {
    const mvcc = new Mvcc();
    mvcc.applyTxn(write(putOp('p/b', '1'), putOp('p/a', '1'), putOp('p', '1'), putOp('q', '1')));
    const { events, result } = mvcc.applyTxn(write({ type: 'delete', key: 'p/', prefix: true }));
    t.same(
      events.map((e) => [e.type, e.kv.key, e.revision]),
      [
        ['delete', 'p/a', 3],
        ['delete', 'p/b', 3],
      ],
    );
    t.equal(result.revision, 3);
    t.same(
      mvcc.range('').kvs.map((kv) => kv.key),
      ['p', 'q'],
    );
    t.match(events[0]?.kv, { value: '', version: 0, createRevision: 0, modRevision: 3 });
  },
);

t.test('range: prefix, limit, after', async (t) => {
  const mvcc = new Mvcc();
  mvcc.applyTxn(write(...['r/c', 'r/a', 'r/e', 'r/b', 'r/d', 's'].map((k) => putOp(k, k))));
  const keys = (prefix: string, options = {}) =>
    mvcc.range(prefix, options).kvs.map((kv) => kv.key);
  t.same(keys('r/'), ['r/a', 'r/b', 'r/c', 'r/d', 'r/e']);
  t.same(keys(''), ['r/a', 'r/b', 'r/c', 'r/d', 'r/e', 's'], "'' is every key");
  t.same(mvcc.range('r/', { limit: 2 }).more, true);
  t.same(keys('r/', { limit: 2, after: 'r/b' }), ['r/c', 'r/d']);
  t.same(mvcc.range('r/', { limit: 3, after: 'r/b' }).more, false);
  t.same(keys('r/', { after: 'a' }), ['r/a', 'r/b', 'r/c', 'r/d', 'r/e'], 'after before prefix');
  t.same(keys('r/', { limit: 0 }).length, 5, 'limit 0 means no limit, as in etcd');
  t.equal(mvcc.range('r/').revision, 2);
});

t.test('bad input throws INVALID_ARGUMENT and changes nothing', async (t) => {
  const mvcc = new Mvcc();
  mvcc.applyTxn(write(putOp('a', '1')));
  const before = JSON.stringify(mvcc.snapshot());
  const bad: unknown[] = [
    write(putOp('', 'x')),
    write(putOp('\0reserved', 'x')),
    write(putOp('b', '1'), putOp('b', '2')),
    write(putOp('b', '1'), { type: 'delete', key: 'b' }),
    write(putOp('p/b', '1'), { type: 'delete', key: 'p/', prefix: true }),
    write(putOp('b', '1', 'not-a-lease')),
    write({ type: 'delete', key: '' }),
    { compares: [{ key: 'a', target: 'bogus', op: '==', value: 1 }], onSuccess: [] },
    { compares: [{ key: 'a', target: 'version', op: '==', value: 'x' }], onSuccess: [] },
    { compares: [], onSuccess: [putOp('ok', 'x'), { type: 'frobnicate', key: 'y' }] },
    { compares: 'nope', onSuccess: [] },
    write(null as never),
  ];
  for (const request of bad) {
    t.throws(() => mvcc.applyTxn(request as TxnRequest), { code: 'INVALID_ARGUMENT' });
  }
  t.throws(() => mvcc.get(''), { code: 'INVALID_ARGUMENT' });
  t.throws(() => mvcc.grantLease('1', 0), { code: 'INVALID_ARGUMENT' });
  t.throws(() => mvcc.grantLease('1', 1.5), { code: 'INVALID_ARGUMENT' });
  t.throws(() => mvcc.grantLease('abc', 5), { code: 'INVALID_ARGUMENT' });
  t.equal(JSON.stringify(mvcc.snapshot()), before, 'state untouched');
});

t.test('overlapping deletes in one branch are allowed, as in etcd', async (t) => {
  const mvcc = new Mvcc();
  mvcc.applyTxn(write(putOp('p/a', '1'), putOp('p/b', '1')));
  const { events } = mvcc.applyTxn(
    write({ type: 'delete', key: 'p/', prefix: true }, { type: 'delete', key: 'p/a' }),
  );
  t.same(
    events.map((e) => e.kv.key),
    ['p/a', 'p/b'],
    'each key deleted once',
  );
});

t.test('leases: attach, unknown lease, revoke deletes keys in one revision', async (t) => {
  const mvcc = new Mvcc();
  mvcc.grantLease('7', 10);
  t.equal(mvcc.revision, 1, 'granting a lease is not a key write');
  t.throws(() => mvcc.grantLease('7', 10), { code: 'INVALID_ARGUMENT' }, 'ids are unique');
  mvcc.applyTxn(write(putOp('l/b', '1', '7'), putOp('l/a', '1', '7'), putOp('free', '1')));
  t.equal(mvcc.get('l/a')?.lease, '7');

  const before = JSON.stringify(mvcc.snapshot());
  t.throws(() => mvcc.applyTxn(write(putOp('x', '1'), putOp('y', '1', '8'))), {
    code: 'LEASE_NOT_FOUND',
  });
  t.equal(JSON.stringify(mvcc.snapshot()), before, 'an unknown lease applies nothing');

  // Re-putting a key without the lease detaches it.
  mvcc.applyTxn(write(putOp('l/b', '2')));
  const revoked = mvcc.revokeLease('7');
  t.same(
    revoked.events.map((e) => [e.type, e.kv.key, e.revision]),
    [['delete', 'l/a', 4]],
  );
  t.equal(mvcc.revision, 4);
  t.equal(mvcc.get('l/b')?.value, '2', 'a detached key survives');
  t.equal(mvcc.hasLease('7'), false);
  t.throws(() => mvcc.revokeLease('7'), { code: 'LEASE_NOT_FOUND' });
});

t.test('revoking a lease with several keys deletes them all at one revision', async (t) => {
  const mvcc = new Mvcc();
  mvcc.grantLease('9', 5);
  mvcc.applyTxn(write(putOp('c', '1', '9')));
  mvcc.applyTxn(write(putOp('a', '1', '9'), putOp('b', '1', '9')));
  const { events } = mvcc.revokeLease('9');
  t.same(
    events.map((e) => [e.kv.key, e.revision]),
    [
      ['a', 4],
      ['b', 4],
      ['c', 4],
    ],
  );
  t.equal(mvcc.revision, 4, 'one bump');
  mvcc.grantLease('10', 5);
  t.same(mvcc.revokeLease('10').events, [], 'a lease without keys');
  t.equal(mvcc.revision, 4, 'revoking it writes no key and keeps the revision');
});

t.test('history, eventsSince and compaction', async (t) => {
  const mvcc = new Mvcc();
  for (let i = 0; i < 5; i++) mvcc.applyTxn(write(putOp(`h/${i}`, String(i))));
  mvcc.applyTxn(write(putOp('other', 'x')));
  t.same(
    mvcc.eventsSince('h/', 4).map((e) => e.revision),
    [4, 5, 6],
  );
  t.same(
    mvcc.eventsSince('h/', 2, 3).map((e) => e.revision),
    [2, 3],
    'bounded above',
  );
  t.same(mvcc.eventsSince('', 7).length, 1);

  mvcc.compact(4);
  t.equal(mvcc.compactRevision, 4);
  t.same(
    mvcc.eventsSince('h/', 4).map((e) => e.revision),
    [4, 5, 6],
    'the compaction point itself stays watchable',
  );
  t.throws(() => mvcc.eventsSince('h/', 3), {
    code: 'WATCH_COMPACTED',
    details: { compactRevision: 4 },
  });
  t.same(mvcc.compact(2), { events: [], changed: false }, 'compacting backwards is a no-op');
  t.throws(() => mvcc.compact(99), { code: 'INVALID_ARGUMENT' }, 'future revision');
  t.throws(() => mvcc.compact(0), { code: 'INVALID_ARGUMENT' });
  t.equal(mvcc.compactRevision, 4);
  t.equal(mvcc.get('h/0')?.value, '0', 'compaction keeps current keys');
});

t.test('snapshot round-trip reproduces the state exactly', async (t) => {
  const mvcc = new Mvcc();
  mvcc.grantLease('42', 30);
  mvcc.grantLease('43', 5);
  mvcc.applyTxn(write(putOp('a', '1', '42'), putOp('\u{1f600}', 'e'), putOp('\uff21', 'f')));
  mvcc.applyTxn(write(putOp('a', '2', '42'), { type: 'delete', key: 'nothing' }));
  mvcc.applyTxn(write({ type: 'delete', key: '\uff21' }));
  mvcc.compact(3);

  const snapshot = mvcc.snapshot();
  const restored = Mvcc.fromSnapshot(JSON.parse(JSON.stringify(snapshot)));
  t.same(restored.snapshot(), snapshot);
  t.equal(restored.revision, mvcc.revision);
  t.same(restored.eventsSince('', 3), mvcc.eventsSince('', 3));
  t.throws(() => restored.eventsSince('', 2), { code: 'WATCH_COMPACTED' });

  // The restored copy behaves the same from here on: leases still own keys.
  const events = restored.revokeLease('42').events;
  t.same(
    events.map((e) => e.kv.key),
    ['a'],
  );
  t.same(
    restored.leases().map((l) => l.id),
    ['43'],
  );
  const next = write(putOp('z', '1'));
  t.same(restored.applyTxn(next).result, { succeeded: true, revision: mvcc.revision + 2 });
});

t.test('apply() replays logged commands deterministically', async (t) => {
  const commands: StoreCommand[] = [
    { op: 'grantLease', id: '5', ttlSeconds: 3 },
    { op: 'txn', txn: write(putOp('a', '1', '5'), putOp('b', '1')), at: 1000 },
    {
      op: 'txn',
      at: 2000,
      txn: {
        requestId: 'once',
        compares: [{ key: 'b', target: 'version', op: '==', value: 1 }],
        onSuccess: [putOp('b', '2')],
      },
    },
    { op: 'revokeLease', id: '5' },
    { op: 'compact', revision: 3 },
  ];
  const one = new Mvcc();
  const two = new Mvcc();
  for (const command of commands) one.apply(command);
  for (const command of JSON.parse(JSON.stringify(commands))) two.apply(command);
  t.same(two.snapshot(), one.snapshot());
  t.equal(one.revision, 4);
  t.throws(() => one.apply({ op: 'nonsense' } as never), { code: 'INVALID_ARGUMENT' });
});

t.test('a txn with a requestId applies at most once within the retention', async (t) => {
  const mvcc = new Mvcc();
  const minute = 60_000;
  const create: TxnRequest = {
    requestId: 'req-1',
    compares: [{ key: 'k', target: 'version', op: '==', value: 0 }],
    onSuccess: [putOp('k', 'first')],
    onFailure: [putOp('failures', 'x')],
  };
  const first = mvcc.applyTxn(create, 0);
  t.same(first.result, { succeeded: true, revision: 2 });
  const again = mvcc.applyTxn(create, 4 * minute);
  t.same(again.result, first.result, 'the resend reports the first outcome');
  t.equal(again.changed, false, 'and changes nothing');
  t.equal(mvcc.get('failures'), undefined, 'the failure branch never ran');

  // A failed compare with nothing to write is remembered too (it has ops).
  const lost = mvcc.applyTxn({ ...create, requestId: 'req-2', onFailure: [] }, 5 * minute);
  t.same(lost.result, { succeeded: false, revision: 2 });
  t.equal(lost.changed, true, 'remembering it is a change to log');
  mvcc.applyTxn(write({ type: 'delete', key: 'k' }), 5 * minute);
  t.same(
    mvcc.applyTxn({ ...create, requestId: 'req-2', onFailure: [] }, 6 * minute).result,
    { succeeded: false, revision: 2 },
    'a resend does not win now that the compare would hold',
  );

  // Past the retention the id is forgotten: it is a new txn.
  const late = mvcc.applyTxn(create, 11 * minute);
  t.equal(late.result.succeeded, true, 'forgotten after REQUEST_ID_RETENTION_MS');
  t.equal(late.result.revision, 4);

  const snapshot = mvcc.snapshot();
  t.same(
    snapshot.requests.map((r) => r.requestId),
    ['req-1'],
    'remembering a new outcome forgot the expired one (req-2 at 5 min)',
  );
  const restored = Mvcc.fromSnapshot(JSON.parse(JSON.stringify(snapshot)));
  t.same(restored.applyTxn(create, 12 * minute).result, late.result, 'survives a snapshot');
  t.throws(() => mvcc.applyTxn({ ...create, requestId: 'no spaces' }), {
    code: 'INVALID_ARGUMENT',
  });
});
