/** core/nodes.ts: the node state machine and its input rules, without any store. */
import t from 'tap';
import { isAmalgamError } from '../../../services/core/errors.ts';
import { createMemoryLayout, rangeOf } from '../../../services/core/memory-layout.ts';
import {
  type ClusterNode,
  decideClaims,
  decideRemoval,
  type NodeClaim,
  type NodeState,
  stateAfterHeartbeat,
  stateWhenSilent,
  validateClaim,
  validateLoad,
  validatePageServerEndpoint,
} from '../../../services/core/nodes.ts';
import { allocateSegment, createSegmentTable } from '../../../services/core/segments.ts';
import { codeOf } from './helpers.ts';

const MiB = 1024 * 1024;
const capacity = { memoryBytes: 0, swapBytes: 0, contributedBytes: 4 * MiB, cpus: 1, cpuSpeed: 0 };
const claim = (name: string, identity = `id-${name}`): NodeClaim => ({ name, identity, capacity });
const node = (state: NodeState, joinedAt = 0): ClusterNode => ({
  name: 'a',
  identity: 'id-a',
  roles: [],
  labels: {},
  capacity,
  state,
  joinedAt,
});

t.test(
  'decideClaims: new names get a record and a range, each claim its own outcome',
  async (t) => {
    const none = () => undefined;
    const d = decideClaims(createMemoryLayout(), none, [claim('a'), claim('b')], 1000);
    t.equal(d.layoutChanged, true);
    t.same(
      d.created.map((n) => [n.name, n.state, n.joinedAt]),
      [
        ['a', 'Joining', 1000],
        ['b', 'Joining', 1000],
      ],
    );
    t.ok(rangeOf(d.layout, 'a') && rangeOf(d.layout, 'b'));
    t.same(
      d.outcomes.map((o) => o.ok && o.rejoined),
      [false, false],
    );
  },
);

t.test('decideClaims: the same identity rejoins; another one gets NAME_TAKEN alone', async (t) => {
  const first = decideClaims(createMemoryLayout(), () => undefined, [claim('a')], 1);
  const stored = (name: string) => first.created.find((n) => n.name === name);
  const again = decideClaims(
    first.layout,
    stored,
    [claim('a'), claim('a', 'thief'), claim('c')],
    2,
  );
  const [same, thief, other] = again.outcomes;
  t.ok(same?.ok && same.rejoined, 'the same key is the same node');
  t.equal(thief?.ok, false);
  if (thief && !thief.ok && isAmalgamError(thief.error)) t.equal(thief.error.code, 'NAME_TAKEN');
  t.ok(other?.ok, 'a refused neighbour does not fail the batch');
  t.same(
    again.created.map((n) => n.name),
    ['c'],
  );
  t.same(rangeOf(again.layout, 'a'), rangeOf(first.layout, 'a'), 'the same range back');
});

t.test(
  'decideClaims: two claims of one new name in a batch: the second identity loses',
  async (t) => {
    const d = decideClaims(createMemoryLayout(), () => undefined, [claim('a'), claim('a', 'x')], 0);
    t.equal(d.outcomes[0]?.ok, true);
    t.equal(d.outcomes[1]?.ok, false);
    t.equal(d.created.length, 1);
  },
);

t.test('heartbeat: Joining and NotReady become Ready; Draining stays', async (t) => {
  const table: [NodeState, NodeState][] = [
    ['Joining', 'Ready'],
    ['NotReady', 'Ready'],
    ['Ready', 'Ready'],
    ['Draining', 'Draining'],
  ];
  for (const [from, to] of table) t.equal(stateAfterHeartbeat(node(from)), to, from);
});

t.test('silence: Ready becomes NotReady; Joining only after its grace', async (t) => {
  t.equal(stateWhenSilent(node('Ready'), false, 1000, 0), 'NotReady');
  t.equal(stateWhenSilent(node('Ready'), true, 1000, 0), undefined, 'alive: left alone');
  t.equal(stateWhenSilent(node('Joining', 0), false, 1000, 500), undefined, 'within grace');
  t.equal(stateWhenSilent(node('Joining', 0), false, 1000, 1001), 'NotReady');
  t.equal(stateWhenSilent(node('Draining'), false, 1000, 5000), undefined, "the admin's intent");
  t.equal(stateWhenSilent(node('NotReady'), false, 1000, 5000), undefined, 'already');
});

t.test('removal frees the range, refused while a segment has extents on the node', async (t) => {
  const d = decideClaims(createMemoryLayout(), () => undefined, [claim('a')], 0);
  t.same(decideRemoval('a', d.layout, undefined)?.ranges, []);
  t.equal(decideRemoval('a', undefined, undefined), undefined);
  const seg = allocateSegment(d.layout, createSegmentTable(), {
    id: 's',
    size: 4096,
    placement: { mode: 'pinned', node: 'a' },
  });
  t.same(
    codeOf(() => decideRemoval('a', d.layout, seg.table)),
    { code: 'NODE_IN_USE', field: undefined },
  );
});

t.test('input rules name the field', async (t) => {
  t.same(
    codeOf(() => validateClaim({ name: 'A', capacity })),
    { code: 'INVALID_ARGUMENT', field: 'name' },
  );
  t.same(
    codeOf(() => validateClaim({ name: 'a', capacity: { ...capacity, cpus: 0 } })),
    {
      code: 'INVALID_ARGUMENT',
      field: 'capacity.cpus',
    },
  );
  const roles = Array.from({ length: 17 }, (_, i) => `r${i}`);
  t.same(
    codeOf(() => validateClaim({ name: 'a', capacity, roles })),
    {
      code: 'INVALID_ARGUMENT',
      field: 'roles',
    },
  );
  const load = { load1: 0, load5: 0, load15: 0, memoryUsedBytes: 0, processes: 0 };
  t.same(
    codeOf(() => validateLoad(load)),
    {},
  );
  t.same(
    codeOf(() => validateLoad({ ...load, load1: Number.NaN })),
    {
      code: 'INVALID_ARGUMENT',
      field: 'load1',
    },
  );
  t.same(
    codeOf(() => validateLoad({ ...load, processes: -1 })),
    {
      code: 'INVALID_ARGUMENT',
      field: 'processes',
    },
  );
  t.same(validatePageServerEndpoint({ address: '[::1]:7000', tls: true }), {
    address: '[::1]:7000',
    tls: true,
  });
  t.same(
    codeOf(() => validatePageServerEndpoint({ address: 'h:0', tls: true })),
    {
      code: 'INVALID_ARGUMENT',
      field: 'pageserver.address',
    },
  );
});
