import t from 'tap';
import { type PlacementNode, placeProcess } from '../../../services/core/placement.ts';
import { newProcessRecord } from '../../../services/core/processes.ts';
import {
  DEFAULT_REBALANCE_POLICY,
  planMoves,
  type RebalanceProcess,
  rebalanceCandidates,
} from '../../../services/core/rebalance.ts';

const node = (name: string, over: Partial<PlacementNode> = {}): PlacementNode => ({
  name,
  cpus: 1,
  speed: 1,
  labels: {},
  roles: [],
  ready: true,
  demand: 0,
  ...over,
});

t.test('placement: free CPU times speed, labels and roles, Ready only', async (t) => {
  const nodes = [
    node('a', { cpus: 4, demand: 3 }),
    node('b', { cpus: 2, speed: 2 }),
    node('c', { cpus: 8, ready: false }),
  ];
  t.equal(
    placeProcess(nodes, { cpus: 1, labels: {} }),
    'b',
    '2 free x speed 2 beats 1 free x 1; c is not Ready',
  );
  t.equal(
    placeProcess([node('a', { labels: { disk: 'ssd' } }), node('b', { cpus: 4 })], {
      cpus: 1,
      labels: { disk: 'ssd' },
    }),
    'a',
  );
  t.equal(
    placeProcess([node('a'), node('b', { roles: ['compute'] })], {
      cpus: 1,
      labels: { role: 'compute' },
    }),
    'b',
  );
  t.equal(
    placeProcess([node('a', { demand: 5 }), node('b', { demand: 2 })], { cpus: 1, labels: {} }),
    'b',
    'all full: least pressure',
  );
  t.equal(placeProcess(nodes, { cpus: 1, labels: {}, node: 'a' }), 'a', 'pinned');
  t.throws(() => placeProcess(nodes, { cpus: 1, labels: {}, node: 'c' }), { code: 'NO_PLACEMENT' });
  t.throws(() => placeProcess(nodes, { cpus: 1, labels: {}, node: 'zz' }), {
    code: 'NODE_NOT_FOUND',
  });
  t.throws(() => placeProcess(nodes, { cpus: 1, labels: { gpu: 'yes' } }), {
    code: 'NO_PLACEMENT',
  });
});

const proc = (
  cpid: number,
  home: string,
  over: Partial<RebalanceProcess> = {},
): RebalanceProcess => ({
  cpid,
  home,
  cpus: 1,
  migratable: 'checkpoint',
  state: 'running',
  labels: {},
  startedAt: 0,
  cpuUse: 1,
  migrations: 0,
  lastMovedAt: null,
  ...over,
});
const nodesOf = (...names: string[]) => names.map((n) => node(n));

/** Applies rounds of moves (each a fresh decision) until nothing moves; returns homes and moves. */
function settle(
  nodes: PlacementNode[],
  procs: RebalanceProcess[],
  policy = DEFAULT_REBALANCE_POLICY,
) {
  let now = 100_000;
  let total = 0;
  for (let round = 0; round < 100; round++) {
    const moves = planMoves(nodes, procs, now, policy);
    if (moves.length === 0) break;
    for (const m of moves) {
      const p = procs.find((x) => x.cpid === m.cpid) as RebalanceProcess;
      p.home = m.to;
      p.migrations++;
      p.lastMovedAt = now;
      total++;
    }
    now += 60_000;
  }
  return total;
}

t.test(
  'rebalance: 9 on one of 3 equal nodes end 3/3/3 in 6 moves, then nothing moves',
  async (t) => {
    const procs = Array.from({ length: 9 }, (_, i) => proc(i, 'a'));
    const moves = settle(nodesOf('a', 'b', 'c'), procs);
    t.equal(moves, 6);
    for (const n of ['a', 'b', 'c'])
      t.equal(procs.filter((p) => p.home === n).length, 3, `3 on ${n}`);
    t.ok(procs.every((p) => p.migrations <= 1));
  },
);

t.test(
  'rebalance: toward the faster node until pressures match; hysteresis stops ping-pong',
  async (t) => {
    const nodes = [node('slow'), node('fast', { speed: 3 })];
    const procs = Array.from({ length: 8 }, (_, i) => proc(i, 'slow'));
    settle(nodes, procs);
    t.equal(procs.filter((p) => p.home === 'fast').length, 6, '6 of 8 on the 3x node');
    t.same(
      planMoves(nodesOf('a', 'b'), [proc(1, 'a'), proc(2, 'a'), proc(3, 'b')], 0),
      [],
      '2 vs 1 is within the threshold',
    );
  },
);

t.test(
  'rebalance: candidates respect never, age, cool-down, max moves, labels; pending first',
  async (t) => {
    const nodes = nodesOf('a', 'b');
    const now = 1_000_000;
    t.same(
      planMoves(
        nodes,
        [proc(1, 'a', { migratable: 'never' }), proc(2, 'a', { migratable: 'never' })],
        now,
      ),
      [],
    );
    t.same(
      planMoves(
        nodes,
        [proc(1, 'a', { startedAt: now - 10 }), proc(2, 'a', { startedAt: now - 10 })],
        now,
      ),
      [],
      'too young',
    );
    t.same(
      planMoves(
        nodes,
        [proc(1, 'a', { lastMovedAt: now - 10 }), proc(2, 'a', { lastMovedAt: now - 10 })],
        now,
      ),
      [],
      'cooling down',
    );
    t.same(
      planMoves(nodes, [proc(1, 'a', { migrations: 2 }), proc(2, 'a', { migrations: 2 })], now),
      [],
      'moved twice',
    );
    t.same(
      planMoves(
        nodes,
        [proc(1, 'a', { labels: { x: 'y' } }), proc(2, 'a', { labels: { x: 'y' } })],
        now,
      ),
      [],
      'b lacks the label',
    );
    const moves = planMoves(
      nodes,
      [
        proc(1, 'a', { cpuUse: 0.1 }),
        proc(2, 'a', { state: 'pending', startedAt: null }),
        proc(3, 'a', { cpuUse: 0.9 }),
      ],
      now,
    );
    t.equal(moves[0]?.cpid, 2, 'a pending process moves first (free)');
    const busy = planMoves(
      nodes,
      [proc(1, 'a', { cpuUse: 0.1 }), proc(3, 'a', { cpuUse: 0.9 })],
      now,
    );
    t.equal(busy.length, 1, 'one move closes the gap');
    t.equal(busy[0]?.cpid, 3, 'the most CPU-bound moves first');
  },
);

t.test("rebalance candidates: the policy's view of records, with measured CPU use", async (t) => {
  const spec = { command: 'x', args: [], migratable: 'checkpoint' as const, cpus: 2, labels: {} };
  const a = newProcessRecord(spec, 100_000, 'a', 'node:a', 5);
  const b = { ...newProcessRecord(spec, 100_001, 'b', 'node:b', 5), migrations: 1, lastMovedAt: 7 };
  t.same(rebalanceCandidates([a, b], new Map([[100_001, 1.5]])), [
    {
      cpid: 100_000,
      home: 'a',
      cpus: 2,
      migratable: 'checkpoint',
      state: 'pending',
      labels: {},
      startedAt: null,
      cpuUse: null,
      migrations: 0,
      lastMovedAt: null,
    },
    {
      cpid: 100_001,
      home: 'b',
      cpus: 2,
      migratable: 'checkpoint',
      state: 'pending',
      labels: {},
      startedAt: null,
      cpuUse: 1.5,
      migrations: 1,
      lastMovedAt: 7,
    },
  ]);
});
