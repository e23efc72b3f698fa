import t, { type Test } from 'tap';
import { isAmalgamError } from '../../../services/core/errors.ts';
import {
  allocateRange,
  checkLayout,
  createMemoryLayout,
  DEFAULT_SPACE_END,
  DEFAULT_SPACE_START,
  layoutStats,
  type MemoryLayout,
  MIB,
  ownerOf,
  RANGE_ALIGNMENT,
  rangeOf,
  releaseRange,
} from '../../../services/core/memory-layout.ts';
import { codeOf, prng } from './helpers.ts';

const snapshot = (layout: MemoryLayout) => JSON.stringify(layout);

t.test('the default space starts at 2 MiB and ends at 2^52, all safe integers', async (t) => {
  t.equal(DEFAULT_SPACE_START, 2 * MIB);
  t.equal(DEFAULT_SPACE_END, 2 ** 52);
  t.ok(Number.isSafeInteger(DEFAULT_SPACE_END));
  const layout = createMemoryLayout();
  t.same(layout, { spaceStart: DEFAULT_SPACE_START, spaceEnd: DEFAULT_SPACE_END, ranges: [] });
  t.same(checkLayout(layout), []);
  t.same(layoutStats(layout), {
    spaceBytes: DEFAULT_SPACE_END - DEFAULT_SPACE_START,
    allocatedBytes: 0,
    freeBytes: DEFAULT_SPACE_END - DEFAULT_SPACE_START,
    nodes: 0,
    largestFreeBytes: DEFAULT_SPACE_END - DEFAULT_SPACE_START,
  });
});

t.test('space bounds must be aligned, safe and non-empty', async (t) => {
  t.same(
    codeOf(() => createMemoryLayout({ spaceStart: 4096 })),
    {
      code: 'INVALID_ARGUMENT',
      field: 'spaceStart',
    },
  );
  t.same(
    codeOf(() => createMemoryLayout({ spaceEnd: 2 ** 53 + 2 * MIB })),
    {
      code: 'INVALID_ARGUMENT',
      field: 'spaceEnd',
    },
  );
  t.same(
    codeOf(() => createMemoryLayout({ spaceStart: 8 * MIB, spaceEnd: 8 * MIB })),
    {
      code: 'INVALID_ARGUMENT',
      field: 'spaceEnd',
    },
  );
});

t.test('ranges are 2 MiB aligned, rounded up, and packed from the start', async (t) => {
  let layout = createMemoryLayout();
  const a = allocateRange(layout, 'alpha', 1);
  t.equal(a.created, true);
  t.same(a.range, { node: 'alpha', start: DEFAULT_SPACE_START, size: RANGE_ALIGNMENT });
  layout = a.layout;
  const b = allocateRange(layout, 'beta', 5 * MIB + 1);
  t.same(b.range, { node: 'beta', start: DEFAULT_SPACE_START + 2 * MIB, size: 6 * MIB });
  const c = allocateRange(b.layout, 'gamma', 4 * MIB);
  t.equal(c.range.size, 4 * MIB, 'an aligned size is not rounded further');
  t.equal(c.range.start, DEFAULT_SPACE_START + 8 * MIB);
  t.same(checkLayout(c.layout), []);
  t.same(layoutStats(c.layout).allocatedBytes, 12 * MIB);
});

t.test('re-allocating for a node returns its existing range, unchanged', async (t) => {
  const first = allocateRange(createMemoryLayout(), 'alpha', 64 * MIB);
  const before = snapshot(first.layout);
  for (const bytes of [64 * MIB, 1, 1024 * MIB]) {
    const again = allocateRange(first.layout, 'alpha', bytes);
    t.equal(again.created, false);
    t.equal(again.layout, first.layout, 'the very same layout comes back');
    t.same(again.range, first.range);
  }
  t.equal(snapshot(first.layout), before);
  const roundTripped = JSON.parse(before) as MemoryLayout;
  t.same(
    allocateRange(roundTripped, 'alpha', 1).range,
    first.range,
    'also after a store round trip',
  );
});

t.test('bad input names the field', async (t) => {
  const layout = createMemoryLayout();
  for (const bytes of [0, -2 * MIB, 1.5, Number.NaN, Infinity, 2 ** 53, '4096']) {
    t.same(
      codeOf(() => allocateRange(layout, 'alpha', bytes as number)),
      { code: 'INVALID_ARGUMENT', field: 'bytes' },
      `bytes ${String(bytes)}`,
    );
  }
  for (const node of ['', 'Alpha', 'a_b', '-a', 42]) {
    t.same(
      codeOf(() => allocateRange(layout, node as string, MIB)),
      {
        code: 'INVALID_ARGUMENT',
        field: 'node',
      },
    );
  }
  const existing = allocateRange(layout, 'alpha', MIB).layout;
  t.same(
    codeOf(() => allocateRange(existing, 'alpha', 0)),
    { code: 'INVALID_ARGUMENT', field: 'bytes' },
    'bad input is refused even for a node that has a range',
  );
});

t.test('a request no gap can hold is RANGE_EXHAUSTED and changes nothing', async (t) => {
  let layout = createMemoryLayout({ spaceStart: 2 * MIB, spaceEnd: 12 * MIB });
  layout = allocateRange(layout, 'a', 4 * MIB).layout;
  layout = allocateRange(layout, 'b', 2 * MIB).layout;
  layout = allocateRange(layout, 'c', 4 * MIB).layout;
  t.same(layoutStats(layout).freeBytes, 0);
  t.same(
    codeOf(() => allocateRange(layout, 'd', 1)),
    { code: 'RANGE_EXHAUSTED' },
  );
  layout = releaseRange(layout, 'a').layout;
  layout = releaseRange(layout, 'c').layout;
  t.same(layoutStats(layout).freeBytes, 8 * MIB);
  t.same(
    codeOf(() => allocateRange(layout, 'd', 6 * MIB)),
    { code: 'RANGE_EXHAUSTED' },
    'free bytes are enough but no single gap is: ranges are contiguous',
  );
  t.same(
    codeOf(() => allocateRange(createMemoryLayout(), 'huge', Number.MAX_SAFE_INTEGER)),
    { code: 'RANGE_EXHAUSTED' },
    'more than the whole space',
  );
});

t.test('first fit reuses the lowest released gap that fits', async (t) => {
  let layout = createMemoryLayout();
  for (const [node, size] of [
    ['a', 4],
    ['b', 8],
    ['c', 2],
    ['d', 16],
    ['e', 2],
  ] as const) {
    layout = allocateRange(layout, node, size * MIB).layout;
  }
  const b = rangeOf(layout, 'b');
  const d = rangeOf(layout, 'd');
  layout = releaseRange(layout, 'b').layout;
  layout = releaseRange(layout, 'd').layout;

  const small = allocateRange(layout, 'f', 2 * MIB);
  t.equal(small.range.start, b?.start, 'the first gap, not the best-fitting one');
  const big = allocateRange(small.layout, 'g', 10 * MIB);
  t.equal(big.range.start, d?.start, 'the first gap that is big enough');
  const tail = allocateRange(big.layout, 'h', 32 * MIB);
  const e = rangeOf(layout, 'e');
  t.equal(tail.range.start, (e?.start ?? 0) + (e?.size ?? 0), 'no gap fits: after the last range');
  t.same(checkLayout(tail.layout), []);
  t.same(
    tail.layout.ranges.map((r) => r.start),
    [...tail.layout.ranges.map((r) => r.start)].sort((x, y) => x - y),
    'kept sorted',
  );
});

t.test('release is idempotent and never mutates its input', async (t) => {
  const layout = allocateRange(createMemoryLayout(), 'a', MIB).layout;
  const before = snapshot(layout);
  const gone = releaseRange(layout, 'a');
  t.same(gone.released, { node: 'a', start: DEFAULT_SPACE_START, size: 2 * MIB });
  t.same(gone.layout.ranges, []);
  t.equal(snapshot(layout), before);
  const again = releaseRange(gone.layout, 'a');
  t.equal(again.released, undefined);
  t.equal(again.layout, gone.layout);
});

t.test('ownerOf finds the range holding an address; ends are exclusive', async (t) => {
  let layout = createMemoryLayout();
  layout = allocateRange(layout, 'a', 2 * MIB).layout;
  layout = allocateRange(layout, 'b', 4 * MIB).layout;
  layout = allocateRange(layout, 'c', 2 * MIB).layout;
  layout = releaseRange(layout, 'b').layout;
  const a = rangeOf(layout, 'a');
  const c = rangeOf(layout, 'c');
  t.equal(ownerOf(layout, DEFAULT_SPACE_START)?.node, 'a');
  t.equal(ownerOf(layout, DEFAULT_SPACE_START + 2 * MIB - 1)?.node, 'a');
  t.equal(ownerOf(layout, DEFAULT_SPACE_START + 2 * MIB), undefined, "b's old range is a gap");
  t.equal(ownerOf(layout, c?.start ?? -1)?.node, 'c');
  t.equal(ownerOf(layout, (c?.start ?? 0) + (c?.size ?? 0)), undefined);
  t.equal(ownerOf(layout, 0), undefined, 'address 0 is never owned');
  t.equal(ownerOf(layout, DEFAULT_SPACE_START - 1), undefined);
  t.equal(ownerOf(layout, (a?.start ?? 0) + 0.5), undefined);
  t.equal(ownerOf(layout, Number.NaN), undefined);
});

t.test('checkLayout reports every kind of broken layout', async (t) => {
  const kinds = (layout: MemoryLayout) => checkLayout(layout).map((v) => v.kind);
  const base = { spaceStart: 2 * MIB, spaceEnd: 64 * MIB };
  t.same(kinds({ ...base, ranges: [{ node: 'a', start: 2 * MIB, size: 3 * MIB }] }), [
    'misaligned',
  ]);
  t.same(kinds({ ...base, ranges: [{ node: 'a', start: 62 * MIB, size: 4 * MIB }] }), [
    'outside-space',
  ]);
  t.same(kinds({ ...base, ranges: [{ node: 'a', start: 0, size: 2 * MIB }] }), ['outside-space']);
  t.same(
    kinds({
      ...base,
      ranges: [
        { node: 'a', start: 2 * MIB, size: 8 * MIB },
        { node: 'b', start: 6 * MIB, size: 2 * MIB },
      ],
    }),
    ['overlap'],
  );
  t.same(
    kinds({
      ...base,
      ranges: [
        { node: 'a', start: 2 * MIB, size: 2 * MIB },
        { node: 'a', start: 4 * MIB, size: 2 * MIB },
      ],
    }),
    ['duplicate-node'],
  );
  t.same(
    kinds({
      ...base,
      ranges: [
        { node: 'b', start: 6 * MIB, size: 2 * MIB },
        { node: 'a', start: 2 * MIB, size: 2 * MIB },
      ],
    }),
    ['unsorted'],
  );
  t.same(kinds({ ...base, ranges: [{ node: 'a', start: 2 * MIB, size: 0 }] }), ['invalid-range']);
  t.same(kinds({ spaceStart: 4 * MIB, spaceEnd: 4 * MIB, ranges: [] }), ['invalid-space']);
});

/**
 * A block-by-block model of the space: the oracle for first fit, ownership and
 * accounting, independent of the gap arithmetic under test.
 */
class BlockModel {
  readonly owners: (string | undefined)[];
  constructor(
    readonly spaceStart: number,
    blocks: number,
  ) {
    this.owners = new Array(blocks).fill(undefined);
  }
  firstFit(blocks: number): number | undefined {
    let run = 0;
    for (let i = 0; i < this.owners.length; i++) {
      run = this.owners[i] === undefined ? run + 1 : 0;
      if (run === blocks) return i - blocks + 1;
    }
    return undefined;
  }
  set(start: number, size: number, owner: string | undefined): void {
    const first = (start - this.spaceStart) / RANGE_ALIGNMENT;
    for (let i = 0; i < size / RANGE_ALIGNMENT; i++) this.owners[first + i] = owner;
  }
  ownerAt(address: number): string | undefined {
    return this.owners[Math.floor((address - this.spaceStart) / RANGE_ALIGNMENT)];
  }
}

function randomRun(seed: number, steps: number, t?: Test): MemoryLayout {
  const rand = prng(seed);
  const blocks = 256; // a 512 MiB space, small enough to exhaust often
  let layout = createMemoryLayout({ spaceStart: 2 * MIB, spaceEnd: 2 * MIB + blocks * 2 * MIB });
  const model = new BlockModel(2 * MIB, blocks);
  const sizes = new Map<string, number>();
  let exhaustedCount = 0;
  let reused = 0;
  for (let step = 0; step < steps; step++) {
    const node = `node-${rand(48)}`;
    if (rand(3) > 0) {
      const bytes = 1 + rand(rand(2) ? 64 * MIB : 4 * MIB);
      const expectedSize = Math.ceil(bytes / RANGE_ALIGNMENT) * RANGE_ALIGNMENT;
      const had = rangeOf(layout, node);
      const expectedBlock = had ? undefined : model.firstFit(expectedSize / RANGE_ALIGNMENT);
      try {
        const res = allocateRange(layout, node, bytes);
        if (had) {
          if (res.created || res.layout !== layout || res.range !== had) {
            t?.fail(`step ${step}: re-allocation for ${node} changed something`);
          }
        } else {
          const start = 2 * MIB + (expectedBlock ?? -1) * RANGE_ALIGNMENT;
          if (res.range.start !== start || res.range.size !== expectedSize) {
            t?.fail(`step ${step}: expected first fit at ${start}, got ${res.range.start}`);
          }
          if (res.range.start < (layout.ranges.at(-1)?.start ?? 0)) reused++;
          model.set(res.range.start, res.range.size, node);
          sizes.set(node, res.range.size);
        }
        layout = res.layout;
      } catch (err) {
        if (!isAmalgamError(err, 'RANGE_EXHAUSTED') || expectedBlock !== undefined || had) {
          t?.fail(`step ${step}: unexpected ${String(err)}`);
        }
        exhaustedCount++;
      }
    } else {
      const before = rangeOf(layout, node);
      const res = releaseRange(layout, node);
      if (res.released !== before) t?.fail(`step ${step}: released the wrong range`);
      if (before) model.set(before.start, before.size, undefined);
      sizes.delete(node);
      layout = res.layout;
    }
    if (!t) continue;
    const violations = checkLayout(layout);
    if (violations.length > 0) t.fail(`step ${step}: ${JSON.stringify(violations)}`);
    const stats = layoutStats(layout);
    const modelAllocated = model.owners.filter((o) => o !== undefined).length * RANGE_ALIGNMENT;
    const sumOfSizes = [...sizes.values()].reduce((a, b) => a + b, 0);
    if (
      stats.allocatedBytes + stats.freeBytes !== stats.spaceBytes ||
      stats.allocatedBytes !== modelAllocated ||
      stats.allocatedBytes !== sumOfSizes
    ) {
      t.fail(`step ${step}: bytes not accounted for ${JSON.stringify(stats)}`);
    }
    const probe = 2 * MIB + rand(blocks * RANGE_ALIGNMENT);
    if (ownerOf(layout, probe)?.node !== model.ownerAt(probe)) {
      t.fail(`step ${step}: ownerOf(${probe}) disagrees with the model`);
    }
  }
  if (t) {
    t.ok(exhaustedCount > 0, `exhaustion was exercised (${exhaustedCount} times)`);
    t.ok(reused > 0, `released gaps were reused (${reused} times)`);
  }
  return layout;
}

t.test('randomized allocate/release keeps the layout sound and every byte counted', async (t) => {
  for (const seed of [1, 42, 20260101]) {
    await t.test(`seed ${seed}`, async (t) => {
      const layout = randomRun(seed, 4000, t);
      t.same(checkLayout(layout), []);
    });
  }
});

t.test('the same inputs give the same layout, byte for byte', async (t) => {
  t.equal(snapshot(randomRun(7, 2000)), snapshot(randomRun(7, 2000)));
});
