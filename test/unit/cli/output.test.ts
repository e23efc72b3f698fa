import t from 'tap';
import type { NodeView, SegmentView } from '../../../services/api/contracts.ts';
import { describeNode, NODE_COLUMNS, nodeRow } from '../../../services/cli/node-format.ts';
import { renderFields, renderTable, toJson } from '../../../services/cli/output.ts';
import { SEGMENT_COLUMNS, segmentRow } from '../../../services/cli/segment-format.ts';

const now = Date.parse('2026-01-01T01:00:00Z');

const node: NodeView = {
  name: 'node-a',
  roles: ['worker'],
  labels: { zone: 'a' },
  capacity: {
    memoryBytes: 16 * 2 ** 30,
    swapBytes: 2 * 2 ** 30,
    contributedBytes: 18 * 2 ** 30,
    cpus: 8,
    cpuSpeed: 2400,
  },
  state: 'Ready',
  range: { start: 0x200000, size: 18 * 2 ** 30 },
  identity: `sha256:${'ab'.repeat(32)}`,
  joinedAt: '2026-01-01T00:00:00Z',
  lastHeartbeatAt: '2026-01-01T00:59:50Z',
  load: { load1: 0.5, load5: 0.25, load15: 0.125, memoryUsedBytes: 2 ** 30, processes: 120 },
  pageserver: { address: '127.0.0.1:7070', tls: false },
};

t.test('a table pads columns to the widest cell, three spaces apart', async (t) => {
  t.equal(
    renderTable(
      ['NAME', 'STATE'],
      [
        ['a', 'Ready'],
        ['longer-name', 'NotReady'],
      ],
    ),
    'NAME          STATE\na             Ready\nlonger-name   NotReady\n',
  );
  t.equal(renderTable(['NAME', 'STATE'], []), 'NAME   STATE\n', 'no rows: the header alone');
});

t.test('fields align their values; a list is indented under its key', async (t) => {
  t.equal(
    renderFields([
      ['Name', 'x'],
      ['Capacity', [['CPUs', '8']]],
      ['State', 'Ready'],
    ]),
    'Name:      x\nCapacity:\n  CPUs:  8\nState:     Ready\n',
  );
});

t.test('json is the value, indented, one trailing newline', async (t) => {
  t.equal(toJson({ items: [] }), '{\n  "items": []\n}\n');
  t.same(JSON.parse(toJson(node)), node);
});

t.test('a node row has a cell per column', async (t) => {
  const row = nodeRow(node, now);
  t.equal(row.length, NODE_COLUMNS.length);
  t.same(row, ['node-a', 'Ready', 'worker', '18Gi', '0x200000-0x480200000', '8', '0.50', '60m']);
  t.same(nodeRow({ ...node, roles: [], load: null }, now).slice(2, 7), [
    '<none>',
    '18Gi',
    '0x200000-0x480200000',
    '8',
    '-',
  ]);
});

t.test('node describe shows identity, range, capacity and load', async (t) => {
  const text = describeNode(node, now);
  t.match(text, /^Name:\s+node-a$/m);
  t.match(text, /^Labels:\s+zone=a$/m);
  t.match(text, new RegExp(`^Identity:\\s+${node.identity}$`, 'm'));
  t.match(text, /^Range:\s+0x200000-0x480200000 \(18Gi, 19327352832 bytes\)$/m);
  t.match(text, /^ {2}Contributed:\s+18Gi$/m);
  t.match(text, /^ {2}Processes:\s+120$/m);
  t.match(describeNode({ ...node, lastHeartbeatAt: null, load: null }, now), /<never>/);
});

t.test('a segment row lists its placement and extents', async (t) => {
  const segment: SegmentView = {
    id: 'seg-1',
    size: 64 * 2 ** 20,
    placement: { mode: 'pinned', node: 'node-a' },
    extents: [{ node: 'node-a', start: 0x200000, size: 64 * 2 ** 20 }],
    owner: 'admin',
    createdAt: '2026-01-01T00:59:00Z',
  };
  const row = segmentRow(segment, now);
  t.equal(row.length, SEGMENT_COLUMNS.length);
  t.same(row, ['seg-1', '64Mi', 'pinned:node-a', 'node-a:0x200000-0x4200000', 'admin', '60s']);
  t.equal(segmentRow({ ...segment, placement: { mode: 'spread' } }, now)[2], 'spread');
});
