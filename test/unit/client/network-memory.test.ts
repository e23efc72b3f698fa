/**
 * NetworkMemory's routing without a page server: segment offsets through
 * extents, the routing table re-read for an unknown address, ADDRESS_UNMAPPED,
 * argument checks, and a node that publishes no page server (no socket opened).
 */
import t from 'tap';
import type { MemoryLayoutView, NodeView } from '../../../services/api/contracts.ts';
import { NetworkMemory, segmentPieces } from '../../../services/client/network-memory.ts';

const MiB = 1024 * 1024;

const segment = {
  id: 'seg',
  size: 6 * MiB + 4096,
  extents: [
    { node: 'b', start: 100 * MiB, size: 2 * MiB },
    { node: 'a', start: 10 * MiB, size: 4 * MiB },
    { node: 'c', start: 200 * MiB, size: 4096 },
  ],
};

t.test('segment offsets map through the extents in order', async (t) => {
  t.same(segmentPieces(segment, 0, 16), [{ address: 100 * MiB, length: 16, offset: 0 }]);
  t.same(segmentPieces(segment, 2 * MiB - 8, 16), [
    { address: 102 * MiB - 8, length: 8, offset: 0 },
    { address: 10 * MiB, length: 8, offset: 8 },
  ]);
  t.same(
    segmentPieces(segment, 0, segment.size).map((p) => p.length),
    [2 * MiB, 4 * MiB, 4096],
  );
  t.same(segmentPieces(segment, 6 * MiB + 4000, 96), [
    { address: 200 * MiB + 4000, length: 96, offset: 0 },
  ]);
  t.same(segmentPieces(segment, segment.size, 0), []);
  t.throws(() => segmentPieces(segment, 0, segment.size + 1), {
    code: 'INVALID_ARGUMENT',
    details: { field: 'length' },
  });
  t.throws(() => segmentPieces(segment, -1, 1), {
    code: 'INVALID_ARGUMENT',
    details: { field: 'offset' },
  });
});

function fakeClient(ranges: { node: string; start: number; size: number }[]) {
  const calls = { layout: 0, list: 0 };
  const client = {
    memory: {
      layout: async () => {
        calls.layout++;
        return { layout: { spaceStart: 2 * MiB, spaceEnd: 2 ** 52, ranges } } as MemoryLayoutView;
      },
    },
    nodes: {
      list: async () => {
        calls.list++;
        return ranges.map((r) => ({ name: r.node, pageserver: null }) as unknown as NodeView);
      },
    },
  } as unknown as Parameters<typeof NetworkMemory.open>[0]['client'];
  return { client, calls };
}

t.test('an unowned address re-reads the table once, then is ADDRESS_UNMAPPED', async (t) => {
  const { client, calls } = fakeClient([{ node: 'a', start: 2 * MiB, size: 2 * MiB }]);
  const memory = await NetworkMemory.open({ client });
  t.equal(calls.layout, 1);
  await t.rejects(memory.read(8 * MiB, 16), {
    code: 'ADDRESS_UNMAPPED',
    details: { address: 8 * MiB },
  });
  t.equal(calls.layout, 2, 'the table was re-read before giving up');
  await t.rejects(memory.write(4 * MiB - 8, Buffer.alloc(16)), {
    code: 'ADDRESS_UNMAPPED',
    details: { address: 4 * MiB },
  });
  await t.rejects(memory.cas64(2 * MiB + 4, 0n, 1n), { code: 'INVALID_ARGUMENT' });
  await t.rejects(memory.read(-1, 1), { code: 'INVALID_ARGUMENT', details: { field: 'address' } });
  t.same(await memory.read(2 * MiB, 0), Buffer.alloc(0), 'an empty read needs no page server');
  await memory.close();
});

t.test('a node without a published page server is UNAVAILABLE, naming the node', async (t) => {
  const { client, calls } = fakeClient([{ node: 'a', start: 2 * MiB, size: 2 * MiB }]);
  const memory = await NetworkMemory.open({ client });
  await t.rejects(memory.read(2 * MiB, 16), { code: 'UNAVAILABLE', details: { node: 'a' } });
  t.equal(calls.list, 2, 'the endpoints were re-read once');
  await t.rejects(memory.fetchAdd64(2 * MiB, 1n), { code: 'UNAVAILABLE' });
  await memory.close();
});
