import t from 'tap';
import { isAmalgamError } from '../../../services/core/errors.ts';
import {
  blockOf,
  claimPidBlock,
  createPidBlockTable,
  FIRST_CLUSTER_PID,
  MAX_CLUSTER_PID,
  PidAllocator,
  type PidBlock,
} from '../../../services/core/pid-blocks.ts';

t.test('blocks are disjoint, increasing, and found by PID', async (t) => {
  let table = createPidBlockTable();
  const blocks: PidBlock[] = [];
  for (let i = 0; i < 50; i++) {
    const next = claimPidBlock(table, `node:n${i % 3}`, 1 + ((i * 37) % 200), i);
    table = next.table;
    blocks.push(next.block);
  }
  t.equal(blocks[0]?.start, FIRST_CLUSTER_PID);
  for (let i = 1; i < blocks.length; i++) {
    const prev = blocks[i - 1] as PidBlock;
    t.equal(blocks[i]?.start, prev.start + prev.size, `block ${i} follows block ${i - 1}`);
  }
  for (const b of blocks) {
    t.equal(blockOf(table, b.start), b);
    t.equal(blockOf(table, b.start + b.size - 1), b);
  }
  t.equal(blockOf(table, FIRST_CLUSTER_PID - 1), undefined);
  t.equal(blockOf(table, table.next), undefined, 'nothing past the last block');
});

t.test('bad sizes and an exhausted space are refused', async (t) => {
  const table = createPidBlockTable();
  for (const size of [0, -1, 1.5, 70_000]) {
    t.throws(() => claimPidBlock(table, 'admin', size, 0), { code: 'INVALID_ARGUMENT' });
  }
  try {
    claimPidBlock({ next: MAX_CLUSTER_PID - 10, blocks: [] }, 'admin', 100, 0);
    t.fail('claimed past the end');
  } catch (err) {
    t.ok(isAmalgamError(err, 'PID_SPACE_EXHAUSTED'));
  }
});

t.test(
  'an allocator hands out each PID of its blocks once, refilling once at a time',
  async (t) => {
    let table = createPidBlockTable();
    let refills = 0;
    const alloc = new PidAllocator(async () => {
      refills++;
      await new Promise((r) => setTimeout(r, 5));
      const next = claimPidBlock(table, 'node:a', 10, 0);
      table = next.table;
      return next.block;
    });
    const pids = await Promise.all(Array.from({ length: 95 }, () => alloc.next()));
    t.equal(new Set(pids).size, 95, 'unique');
    t.ok(
      pids.every((p) => blockOf(table, p)?.owner === 'node:a'),
      'all from its blocks',
    );
    t.equal(refills, 10, 'ten blocks of ten for 95 PIDs');
  },
);
