import t, { type Test } from 'tap';
import { isAmalgamError } from '../../../services/core/errors.ts';
import {
  allocateRange,
  checkLayout,
  createMemoryLayout,
  type MemoryLayout,
  MIB,
  rangeOf,
  releaseRange,
} from '../../../services/core/memory-layout.ts';
import {
  allocateSegment,
  checkSegments,
  createSegmentTable,
  EXTENT_ALIGNMENT,
  extentFootprint,
  freeSegment,
  nodeUsage,
  PAGE_SIZE,
  type Placement,
  type Segment,
  type SegmentTable,
  segmentsOnNode,
} from '../../../services/core/segments.ts';
import { codeOf, prng } from './helpers.ts';

function layoutOf(nodes: [string, number][]): MemoryLayout {
  let layout = createMemoryLayout();
  for (const [node, mib] of nodes) layout = allocateRange(layout, node, mib * MIB).layout;
  return layout;
}

function bytesOn(segment: Segment, node: string): number {
  return segment.extents.filter((e) => e.node === node).reduce((s, e) => s + e.size, 0);
}

const spread: Placement = { mode: 'spread' };
const pinned = (node: string): Placement => ({ mode: 'pinned', node });

t.test('a pinned segment lives on its node, page-rounded and block-aligned', async (t) => {
  const layout = layoutOf([
    ['a', 64],
    ['b', 64],
  ]);
  const res = allocateSegment(layout, createSegmentTable(), {
    id: 's1',
    size: 5 * MIB + 1,
    placement: pinned('b'),
  });
  t.equal(res.created, true);
  t.equal(res.segment.size, 5 * MIB + PAGE_SIZE, 'rounded up to whole pages');
  t.same(res.segment.placement, { mode: 'pinned', node: 'b' });
  t.same(res.segment.extents, [
    { node: 'b', start: rangeOf(layout, 'b')?.start, size: 5 * MIB + PAGE_SIZE },
  ]);
  t.same(checkSegments(layout, res.table), []);
  t.same(
    nodeUsage(layout, res.table).map((u) => [u.node, u.usedBytes]),
    [
      ['a', 0],
      ['b', 6 * MIB],
    ],
    'the last block is reserved whole',
  );
});

t.test('small segments never share a 2 MiB block', async (t) => {
  const layout = layoutOf([['a', 8]]);
  let table = createSegmentTable();
  for (const id of ['p', 'q', 'r', 's']) {
    table = allocateSegment(layout, table, { id, size: 1, placement: pinned('a') }).table;
  }
  const starts = table.segments.map((s) => s.extents[0]?.start ?? 0);
  t.same(
    new Set(starts.map((s) => Math.floor(s / EXTENT_ALIGNMENT))).size,
    4,
    'four different blocks',
  );
  t.same(
    codeOf(() => allocateSegment(layout, table, { id: 'x', size: 1, placement: spread })),
    {
      code: 'RANGE_EXHAUSTED',
    },
  );
});

t.test('spread deals blocks round robin, most free node first', async (t) => {
  const layout = layoutOf([
    ['c', 4],
    ['a', 20],
    ['b', 12],
  ]);
  const res = allocateSegment(layout, createSegmentTable(), {
    id: 'wide',
    size: 18 * MIB,
    placement: spread,
  });
  // 9 blocks over free 10 (a), 6 (b), 2 (c): three full rounds take 8, the ninth goes to a.
  t.same(
    res.segment.extents.map((e) => [e.node, e.size / MIB]),
    [
      ['a', 8],
      ['b', 6],
      ['c', 4],
    ],
    'one extent per node, in order of free bytes',
  );
  t.same(checkSegments(layout, res.table), []);
  const next = allocateSegment(layout, res.table, {
    id: 'one',
    size: PAGE_SIZE,
    placement: spread,
  });
  t.same(
    next.segment.extents.map((e) => e.node),
    ['a'],
    'a small segment goes to the node with the most free bytes',
  );
});

t.test('spread breaks ties by node name', async (t) => {
  const layout = layoutOf([
    ['zeta', 8],
    ['beta', 8],
    ['alpha', 8],
  ]);
  const res = allocateSegment(layout, createSegmentTable(), {
    id: 's',
    size: 6 * MIB,
    placement: spread,
  });
  t.same(
    res.segment.extents.map((e) => e.node),
    ['alpha', 'beta', 'zeta'],
  );
  const small = allocateSegment(layout, createSegmentTable(), {
    id: 's',
    size: MIB,
    placement: spread,
  });
  t.same(
    small.segment.extents.map((e) => [e.node, e.size]),
    [['alpha', MIB]],
  );
});

t.test('a segment larger than any gap is split over the gaps, largest first', async (t) => {
  const layout = layoutOf([['a', 20]]);
  let table = createSegmentTable();
  for (let i = 0; i < 10; i++) {
    table = allocateSegment(layout, table, {
      id: `f${i}`,
      size: 2 * MIB,
      placement: pinned('a'),
    }).table;
  }
  for (const i of [1, 3, 4, 7, 8, 9]) table = freeSegment(table, `f${i}`).table;
  // free blocks: 1, 3-4, 7-9
  const base = rangeOf(layout, 'a')?.start ?? 0;
  const res = allocateSegment(layout, table, {
    id: 'big',
    size: 10 * MIB,
    placement: pinned('a'),
  });
  t.same(
    res.segment.extents.map((e) => [(e.start - base) / (2 * MIB), e.size / MIB]),
    [
      [3, 4],
      [7, 6],
    ],
    'the two largest gaps, in address order',
  );
  const fits = allocateSegment(layout, table, {
    id: 'fits',
    size: 4 * MIB,
    placement: pinned('a'),
  });
  t.same(
    fits.segment.extents.map((e) => (e.start - base) / (2 * MIB)),
    [3],
    'first fit when one gap holds it all',
  );
  t.same(checkSegments(layout, res.table), []);
});

t.test('exhaustion: not enough free memory on the node or in the cluster', async (t) => {
  const layout = layoutOf([
    ['a', 8],
    ['b', 8],
  ]);
  const table = allocateSegment(layout, createSegmentTable(), {
    id: 'fill',
    size: 8 * MIB,
    placement: pinned('a'),
  }).table;
  t.same(
    codeOf(() => allocateSegment(layout, table, { id: 'x', size: 1, placement: pinned('a') })),
    {
      code: 'RANGE_EXHAUSTED',
    },
  );
  t.same(
    codeOf(() => allocateSegment(layout, table, { id: 'x', size: 8 * MIB, placement: spread }))
      .code,
    undefined,
    'spread still fits on b',
  );
  t.same(
    codeOf(() => allocateSegment(layout, table, { id: 'x', size: 8 * MIB + 1, placement: spread })),
    { code: 'RANGE_EXHAUSTED' },
  );
  t.same(
    codeOf(() =>
      allocateSegment(createMemoryLayout(), createSegmentTable(), {
        id: 'x',
        size: 1,
        placement: spread,
      }),
    ),
    { code: 'RANGE_EXHAUSTED' },
    'no nodes at all',
  );
});

t.test('pinning to a node without a range is NODE_NOT_FOUND', async (t) => {
  const layout = layoutOf([['a', 8]]);
  t.same(
    codeOf(() =>
      allocateSegment(layout, createSegmentTable(), { id: 's', size: 1, placement: pinned('b') }),
    ),
    { code: 'NODE_NOT_FOUND', field: 'placement.node' },
  );
});

t.test('bad input names the field', async (t) => {
  const layout = layoutOf([['a', 8]]);
  const table = createSegmentTable();
  const cases: [unknown, string][] = [
    [{ id: '', size: 1, placement: spread }, 'id'],
    [{ id: 'Bad ID', size: 1, placement: spread }, 'id'],
    [{ id: 's', size: 0, placement: spread }, 'size'],
    [{ id: 's', size: 1.5, placement: spread }, 'size'],
    [{ id: 's', size: 2 ** 53, placement: spread }, 'size'],
    [{ id: 's', size: 1, placement: null }, 'placement'],
    [{ id: 's', size: 1, placement: { mode: 'everywhere' } }, 'placement.mode'],
    [{ id: 's', size: 1, placement: { mode: 'pinned' } }, 'placement.node'],
    [{ id: 's', size: 1, placement: { mode: 'pinned', node: 'A' } }, 'placement.node'],
  ];
  for (const [request, field] of cases) {
    t.same(
      codeOf(() => allocateSegment(layout, table, request as never)),
      { code: 'INVALID_ARGUMENT', field },
      JSON.stringify(request),
    );
  }
});

t.test(
  're-creating a segment is idempotent; a different one under its id is NAME_TAKEN',
  async (t) => {
    const layout = layoutOf([
      ['a', 16],
      ['b', 16],
    ]);
    const first = allocateSegment(layout, createSegmentTable(), {
      id: 's',
      size: 4097,
      placement: spread,
    });
    const again = allocateSegment(layout, first.table, { id: 's', size: 8192, placement: spread });
    t.equal(again.created, false);
    t.equal(again.table, first.table);
    t.equal(again.segment, first.segment);
    t.same(
      codeOf(() =>
        allocateSegment(layout, first.table, { id: 's', size: 3 * MIB, placement: spread }),
      ),
      { code: 'NAME_TAKEN', field: 'id' },
    );
    t.same(
      codeOf(() =>
        allocateSegment(layout, first.table, { id: 's', size: 8192, placement: pinned('a') }),
      ),
      { code: 'NAME_TAKEN', field: 'id' },
    );
  },
);

t.test('freeing returns the memory; unknown ids are SEGMENT_NOT_FOUND', async (t) => {
  const layout = layoutOf([
    ['a', 8],
    ['b', 8],
  ]);
  const empty = createSegmentTable();
  const res = allocateSegment(layout, empty, { id: 's', size: 12 * MIB, placement: spread });
  const before = JSON.stringify(res.table);
  const freed = freeSegment(res.table, 's');
  t.equal(JSON.stringify(res.table), before, 'the input table is not mutated');
  t.equal(freed.segment, res.segment);
  t.same(freed.table, empty);
  t.same(nodeUsage(layout, freed.table), nodeUsage(layout, empty));
  t.same(
    codeOf(() => freeSegment(freed.table, 's')),
    { code: 'SEGMENT_NOT_FOUND' },
  );
});

t.test('segmentsOnNode lists the segments with an extent on the node', async (t) => {
  const layout = layoutOf([
    ['a', 8],
    ['b', 8],
    ['c', 8],
  ]);
  let table = createSegmentTable();
  table = allocateSegment(layout, table, { id: 'on-a', size: MIB, placement: pinned('a') }).table;
  table = allocateSegment(layout, table, { id: 'on-c', size: MIB, placement: pinned('c') }).table;
  table = allocateSegment(layout, table, { id: 'wide', size: 12 * MIB, placement: spread }).table;
  t.same(
    segmentsOnNode(table, 'a').map((s) => s.id),
    ['on-a', 'wide'],
  );
  t.same(
    segmentsOnNode(table, 'b').map((s) => s.id),
    ['wide'],
  );
  t.same(segmentsOnNode(table, 'nobody'), []);
});

t.test('checkSegments reports every kind of broken table', async (t) => {
  const layout = layoutOf([
    ['a', 8],
    ['b', 8],
  ]);
  const a = rangeOf(layout, 'a')?.start ?? 0;
  const b = rangeOf(layout, 'b')?.start ?? 0;
  const kinds = (segments: Segment[]) => checkSegments(layout, { segments }).map((v) => v.kind);
  const seg = (id: string, extents: Segment['extents'], placement: Placement = spread) => ({
    id,
    size: extents.reduce((s, e) => s + e.size, 0),
    extents,
    placement,
  });
  t.same(kinds([seg('s', [{ node: 'a', start: a + PAGE_SIZE, size: PAGE_SIZE }])]), ['misaligned']);
  t.same(
    kinds([
      seg('s', [
        { node: 'a', start: a, size: MIB },
        { node: 'b', start: b, size: MIB },
      ]),
    ]),
    ['misaligned'],
    'only the last extent may end inside a block',
  );
  t.same(kinds([seg('s', [{ node: 'a', start: b, size: MIB }])]), ['outside-node']);
  t.same(kinds([seg('s', [{ node: 'a', start: a + 6 * MIB, size: 4 * MIB }])]), ['outside-node']);
  t.same(kinds([seg('s', [{ node: 'gone', start: a, size: MIB }])]), ['outside-node']);
  t.same(
    kinds([
      seg('s', [{ node: 'a', start: a, size: MIB }]),
      seg('t', [{ node: 'a', start: a, size: 2 * MIB }]),
    ]),
    ['overlap'],
    'footprints overlap even though the bytes used do not',
  );
  t.same(
    kinds([
      seg('s', [{ node: 'a', start: a, size: MIB }]),
      seg('s', [{ node: 'b', start: b, size: MIB }]),
    ]),
    ['duplicate-id'],
  );
  t.same(kinds([seg('s', [{ node: 'b', start: b, size: MIB }], pinned('a'))]), ['placement']);
  t.same(kinds([{ ...seg('s', [{ node: 'a', start: a, size: MIB }]), size: 2 * MIB }]), [
    'size-mismatch',
  ]);
  t.same(kinds([{ id: 's', size: 0, extents: [], placement: spread }]), ['invalid-segment']);
});

/** Checks every invariant of a (layout, table) pair; returns the first failure or undefined. */
function audit(layout: MemoryLayout, table: SegmentTable): string | undefined {
  const layoutViolations = checkLayout(layout);
  if (layoutViolations.length) return JSON.stringify(layoutViolations);
  const segmentViolations = checkSegments(layout, table);
  if (segmentViolations.length) return JSON.stringify(segmentViolations);
  const usage = nodeUsage(layout, table);
  for (const u of usage) {
    const footprint = table.segments
      .flatMap((s) => s.extents)
      .filter((e) => e.node === u.node)
      .reduce((sum, e) => sum + extentFootprint(e), 0);
    if (u.usedBytes !== footprint || u.usedBytes + u.freeBytes !== u.rangeBytes) {
      return `bytes of ${u.node} not accounted for: ${JSON.stringify(u)}, footprints ${footprint}`;
    }
  }
  return undefined;
}

function randomRun(
  seed: number,
  steps: number,
  t?: Test,
): { layout: MemoryLayout; table: SegmentTable } {
  const rand = prng(seed);
  const names = ['n0', 'n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7'];
  let layout = createMemoryLayout();
  for (const node of names.slice(0, 5)) {
    layout = allocateRange(layout, node, (8 + rand(120)) * MIB).layout;
  }
  let table = createSegmentTable();
  let nextId = 0;
  const seen = { created: 0, exhausted: 0, freed: 0, multiExtent: 0, nodeChanges: 0 };
  for (let step = 0; step < steps; step++) {
    const op = rand(20);
    if (op < 11) {
      const placement: Placement = rand(2) ? spread : pinned(names[rand(names.length)] as string);
      const size = 1 + rand(rand(4) ? 8 * MIB : 96 * MIB);
      const blocks = Math.ceil(Math.ceil(size / PAGE_SIZE) / (EXTENT_ALIGNMENT / PAGE_SIZE));
      const usage = nodeUsage(layout, table);
      const available =
        placement.mode === 'pinned'
          ? usage.find((u) => u.node === placement.node)?.freeBytes
          : usage.reduce((s, u) => s + u.freeBytes, 0);
      const id = `seg-${nextId++}`;
      try {
        const res = allocateSegment(layout, table, { id, size, placement });
        const s = res.segment;
        if (s.size < size || s.size - size >= PAGE_SIZE || s.size % PAGE_SIZE !== 0) {
          t?.fail(`step ${step}: size ${s.size} for a request of ${size}`);
        }
        if (available === undefined || available < blocks * EXTENT_ALIGNMENT) {
          t?.fail(`step ${step}: allocated beyond the free memory`);
        }
        if (placement.mode === 'pinned' && bytesOn(s, placement.node) !== s.size) {
          t?.fail(`step ${step}: pinned segment left its node`);
        }
        if (s.extents.length > 1) seen.multiExtent++;
        table = res.table;
        seen.created++;
      } catch (err) {
        const expected =
          available === undefined
            ? isAmalgamError(err, 'NODE_NOT_FOUND')
            : isAmalgamError(err, 'RANGE_EXHAUSTED') && available < blocks * EXTENT_ALIGNMENT;
        if (!expected) t?.fail(`step ${step}: unexpected ${String(err)} (free ${available})`);
        if (isAmalgamError(err, 'RANGE_EXHAUSTED')) seen.exhausted++;
      }
    } else if (op < 19) {
      if (table.segments.length === 0) continue;
      const victim = table.segments[rand(table.segments.length)] as Segment;
      table = freeSegment(table, victim.id).table;
      seen.freed++;
    } else {
      // Node churn: a node leaves only once nothing lives on it; a new one joins.
      const node = names[rand(names.length)] as string;
      if (rangeOf(layout, node)) {
        if (segmentsOnNode(table, node).length === 0) {
          layout = releaseRange(layout, node).layout;
          seen.nodeChanges++;
        }
      } else {
        layout = allocateRange(layout, node, (8 + rand(120)) * MIB).layout;
        seen.nodeChanges++;
      }
    }
    if (t) {
      const problem = audit(layout, table);
      if (problem) {
        t.fail(`step ${step}: ${problem}`);
        break;
      }
    }
  }
  if (t) {
    for (const [what, count] of Object.entries(seen)) {
      t.ok(count > 0, `${what} was exercised (${count} times)`);
    }
  }
  return { layout, table };
}

t.test('randomized allocate/free keeps segments sound and every byte counted', async (t) => {
  for (const seed of [3, 99, 123456]) {
    await t.test(`seed ${seed}`, async (t) => {
      const { layout, table } = randomRun(seed, 3000, t);
      t.equal(audit(layout, table), undefined);
    });
  }
});

t.test('the same inputs give the same table, byte for byte', async (t) => {
  t.equal(JSON.stringify(randomRun(5, 1500)), JSON.stringify(randomRun(5, 1500)));
});
