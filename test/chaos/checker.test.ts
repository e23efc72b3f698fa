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
const pids1 = { start: 100_000, size: 64, owner: 'admin', claimedAt: 1 };
const pids2 = { start: 100_064, size: 32, owner: 'admin', claimedAt: 2 };

const clean: HistoryEvent[] = [
  ...op(0, 'join', 'c0', [0, { name: 'a', identity: 'id-a' }], [5, 'ok', nodeA]),
  ...op(1, 'join', 'c1', [1, { name: 'b', identity: 'id-b' }], [6, 'ok', nodeB]),
  ...op(2, 'allocate', 'c2', [7, { id: 's1', size: 4 * MiB }], [9, 'ok', seg1]),
  ...op(4, 'pid-block', 'c0', [7, { size: 64 }], [8, 'ok', pids1]),
  ...op(5, 'pid-block', 'c1', [8, { size: 32 }], [9, 'ok', pids2]),
  { type: 'nemesis', f: 'partition', value: [['c0'], ['c1', 'c2']], time: 10 },
  ...op(
    3,
    'join',
    'c0',
    [11, { name: 'c', identity: 'id-c' }],
    [17, 'info', { code: 'NO_QUORUM' }],
  ),
  // A minority claim that timed out and then applied after the heal: indeterminate, fine.
  ...op(6, 'pid-block', 'c0', [12, { size: 16 }], [18, 'info', { code: 'UNAVAILABLE' }]),
  { type: 'nemesis', f: 'heal', value: null, time: 20 },
];
const pids3 = { start: 100_096, size: 16, owner: 'admin', claimedAt: 21 };
const final: FinalState = {
  nodes: [nodeA, nodeB],
  segments: [seg1],
  pidBlocks: [pids1, pids2, pids3],
};

t.test('a clean history has no violation', (t) => {
  const r = check(clean, final, control);
  t.same(r.violations, []);
  t.same(r.counts, {
    'join:ok': 2,
    'allocate:ok': 1,
    'pid-block:ok': 2,
    'join:info': 1,
    'pid-block:info': 1,
  });
  t.same(r.minorityOps, { info: 2 }, 'the refused minority join and PID claim are counted');
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

t.test('PID blocks: pid-twice and lost-write fire, and only they', (t) => {
  // A second replica's counter hands out PIDs 100032-100095 again (the naive allocator's bug).
  const again = { start: 100_032, size: 64, owner: 'admin', claimedAt: 30 };
  const r1 = check(
    [...clean, ...op(9, 'pid-block', 'c2', [30, { size: 64 }], [31, 'ok', again])],
    { ...final, pidBlocks: [...final.pidBlocks, again] },
    control,
  );
  t.same(
    r1.violations.map((v) => v.check),
    ['pid-twice', 'pid-twice', 'pid-twice', 'pid-twice'],
    'the block overlaps two acknowledged blocks, and two in the final table',
  );
  t.match(r1.violations[0]?.detail, /PIDs 100000-100063 and .*PIDs 100032-100095 overlap/);

  // The same PIDs acknowledged twice (two claims answered with one block) are held twice too.
  const r2 = check(
    [...clean, ...op(9, 'pid-block', 'c1', [30, { size: 64 }], [31, 'ok', pids1])],
    final,
    control,
  );
  t.same(
    r2.violations.map((v) => v.check),
    ['pid-twice'],
    'one block acknowledged to two claims',
  );

  const r3 = check(clean, { ...final, pidBlocks: [pids1, pids3] }, control);
  t.same(
    r3.violations.map((v) => v.check),
    ['lost-write'],
    'an acknowledged block missing from the final table',
  );
  t.match(r3.violations[0]?.detail, /PID block 100064\+32 .* is not in the final state/);

  const r4 = check(
    clean,
    { ...final, pidBlocks: [pids1, { ...pids2, owner: 'node:w1' }, pids3] },
    control,
  );
  t.same(
    r4.violations.map((v) => v.check),
    ['lost-write'],
    'an acknowledged block that changed owner',
  );

  const minorityClaim = { start: 100_112, size: 8, owner: 'admin', claimedAt: 13 };
  const r5 = check(
    [
      ...clean.slice(0, -1),
      ...op(9, 'pid-block', 'c0', [12, { size: 8 }], [13, 'ok', minorityClaim]),
      clean.at(-1) as HistoryEvent,
    ],
    { ...final, pidBlocks: [...final.pidBlocks, minorityClaim] },
    control,
  );
  t.same(
    r5.violations.map((v) => v.check),
    ['minority-ack'],
    'a PID block acknowledged by the minority',
  );
  t.end();
});
