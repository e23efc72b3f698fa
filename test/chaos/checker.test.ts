/**
 * The checker on hand-made histories: each check reports the violation it is for, and a clean
 * history (including indeterminate minority operations) has none.
 */
import t from 'tap';
import { check, type FinalState, minorityIntervals } from './checker.ts';
import type { HistoryEvent } from './history.ts';

const MiB = 1024 * 1024;
const control = ['c0', 'c1', 'c2'];

function op(
  opId: number,
  f: string,
  target: string,
  invoke: [number, unknown],
  done: [number, 'ok' | 'fail' | 'info', unknown],
): HistoryEvent[] {
  return [
    { type: 'invoke', op: opId, process: opId, f, target, value: invoke[1], time: invoke[0] },
    { type: done[1], op: opId, process: opId, f, target, value: done[2], time: done[0] },
  ];
}

const nodeA = { name: 'a', identity: 'id-a', range: { start: 2 * MiB, size: 64 * MiB } };
const nodeB = { name: 'b', identity: 'id-b', range: { start: 66 * MiB, size: 64 * MiB } };
const seg1 = { id: 's1', size: 4 * MiB, extents: [{ node: 'a', start: 2 * MiB, size: 4 * MiB }] };

const clean: HistoryEvent[] = [
  ...op(0, 'join', 'c0', [0, { name: 'a', identity: 'id-a' }], [5, 'ok', nodeA]),
  ...op(1, 'join', 'c1', [1, { name: 'b', identity: 'id-b' }], [6, 'ok', nodeB]),
  ...op(2, 'allocate', 'c2', [7, { id: 's1', size: 4 * MiB }], [9, 'ok', seg1]),
  { type: 'nemesis', f: 'partition', value: [['c0'], ['c1', 'c2']], time: 10 },
  ...op(
    3,
    'join',
    'c0',
    [11, { name: 'c', identity: 'id-c' }],
    [17, 'info', { code: 'NO_QUORUM' }],
  ),
  { type: 'nemesis', f: 'heal', value: null, time: 20 },
];
const final: FinalState = { nodes: [nodeA, nodeB], segments: [seg1] };

t.test('a clean history has no violation', (t) => {
  const r = check(clean, final, control);
  t.same(r.violations, []);
  t.same(r.counts, { 'join:ok': 2, 'allocate:ok': 1, 'join:info': 1 });
  t.same(r.minorityOps, { info: 1 }, 'the refused minority join is counted');
  t.end();
});

t.test('minority windows: a single machine cut off from 3 is a minority, the rest is not', (t) => {
  const w = minorityIntervals(clean, control);
  t.same(w.get('c0'), [[10, 20]]);
  t.notOk(w.has('c1'));
  t.end();
});

t.test('each check reports what it is for', (t) => {
  const overlapping = { name: 'x', identity: 'id-x', range: { start: 34 * MiB, size: 64 * MiB } };
  const r1 = check(
    [
      ...clean,
      ...op(9, 'join', 'c1', [30, { name: 'x', identity: 'id-x' }], [31, 'ok', overlapping]),
    ],
    { ...final, nodes: [...final.nodes, overlapping] },
    control,
  );
  t.ok(
    r1.violations.some((v) => v.check === 'ranges-overlap'),
    'overlapping ranges',
  );

  const twice = { ...nodeA, identity: 'id-other' };
  const r2 = check(
    [
      ...clean,
      ...op(9, 'join', 'c1', [30, { name: 'a', identity: 'id-other' }], [31, 'ok', twice]),
    ],
    final,
    control,
  );
  t.ok(
    r2.violations.some((v) => v.check === 'name-twice'),
    'a name held by two identities',
  );

  const r3 = check(clean, { ...final, segments: [] }, control);
  t.same(
    r3.violations.map((v) => v.check),
    ['lost-write'],
    'an acknowledged allocation missing from the final state',
  );

  const minorityOk = { name: 'm', identity: 'id-m', range: { start: 200 * MiB, size: 2 * MiB } };
  const r4 = check(
    [
      ...clean.slice(0, -1),
      ...op(9, 'join', 'c0', [12, { name: 'm', identity: 'id-m' }], [13, 'ok', minorityOk]),
      clean.at(-1) as HistoryEvent,
    ],
    { ...final, nodes: [...final.nodes, minorityOk] },
    control,
  );
  t.same(
    r4.violations.map((v) => v.check),
    ['minority-ack'],
    'an acknowledgement from the minority',
  );

  const r5 = check(
    [
      ...clean,
      ...op(
        9,
        'allocate',
        'c1',
        [30, { id: 's1', size: 2 * MiB }],
        [31, 'ok', { ...seg1, size: 2 * MiB }],
      ),
    ],
    final,
    control,
  );
  t.ok(
    r5.violations.some((v) => v.check === 'name-twice'),
    'a segment id acknowledged for two allocations',
  );
  t.end();
});
