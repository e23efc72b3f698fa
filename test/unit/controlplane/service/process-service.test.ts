/**
 * The network process space in the service layer, on the embedded store and
 * without transports: placement, PID ownership, idempotent create, reports
 * fenced by the epoch, fencing a silent source after the margin, the
 * rebalancer's commit, and the watch view being what GET answers. Nodes and
 * heartbeats are written as the nodes feature stores them.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { nodeKeys } from '../../../../services/controlplane/features/nodes/records.ts';
import { applyReport } from '../../../../services/controlplane/features/processes/process-decisions.ts';
import { createProcessService } from '../../../../services/controlplane/features/processes/process-service.ts';
import { placementNodes } from '../../../../services/controlplane/features/processes/process-snapshot.ts';
import {
  processKeys,
  processWatchView,
} from '../../../../services/controlplane/features/processes/records.ts';
import type { Caller } from '../../../../services/controlplane/service/contracts.ts';
import { keys } from '../../../../services/controlplane/service/keys.ts';
import { decideMigration, newProcessRecord } from '../../../../services/core/processes.ts';
import { openEmbeddedStore } from '../../../../services/store/embedded-store.ts';
import { openMirror } from '../../../../services/store/mirror.ts';
import type { Store } from '../../../../services/store/store.ts';

const admin: Caller = { kind: 'admin' };
const node = (name: string): Caller => ({ kind: 'node', name });
const operator: Caller = { kind: 'user', name: 'olive', role: 'operator' };
const viewer: Caller = { kind: 'user', name: 'vera', role: 'viewer' };
const logger = pino({ level: 'silent' });

async function setup(t: Test, clock = { now: 1_000_000 }) {
  const dir = await mkdtemp(join(tmpdir(), 'amalgam-proc-'));
  const store = await openEmbeddedStore({ dataDir: dir, logger });
  const mirror = await openMirror(store, keys.root, { logger });
  const processes = createProcessService({
    store,
    mirror,
    now: () => clock.now,
    replicaId: 'r1',
    fenceMarginMs: 2000,
    logger,
  });
  t.teardown(async () => {
    await mirror.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { store, processes, clock };
}

async function put(store: Store, key: string, value: unknown): Promise<void> {
  await store.txn({
    compares: [],
    onSuccess: [{ type: 'put', key, value: JSON.stringify(value) }],
  });
}

async function addNode(store: Store, name: string, cpus: number, alive = true): Promise<void> {
  await put(store, nodeKeys.node(name), {
    name,
    identity: `sha256:${name}`,
    roles: [],
    labels: {},
    capacity: { memoryBytes: 1, swapBytes: 0, contributedBytes: 1, cpus, cpuSpeed: 1 },
    state: 'Ready',
    joinedAt: 0,
  });
  if (alive) await beat(store, name);
}

const beat = (store: Store, name: string) => put(store, nodeKeys.heartbeat(name), { at: 0 });

t.test('create: placed on the node with the most free CPU, one record per PID', async (t) => {
  const { store, processes } = await setup(t);
  await addNode(store, 'a', 2);
  await addNode(store, 'b', 8);
  await addNode(store, 'c', 64, false); // no heartbeat: not Ready
  const p = await processes.create(operator, { command: '/bin/true' });
  t.match(p, {
    home: 'b',
    state: 'pending',
    epoch: 1,
    owner: 'user:olive',
    migratable: 'restart',
  });
  t.same(await processes.get(admin, p.cpid), p, 'GET answers the stored record');
  const raw = (await store.get(processKeys.process(p.cpid)))?.value as string;
  t.same(processWatchView.view(`processes/${p.cpid}`, raw), p, 'the watch view is the GET view');
  t.equal(processWatchView.root, 'processes/');
  t.same(
    (await processes.list(admin)).map((r) => r.cpid),
    [p.cpid],
  );

  await t.rejects(processes.create(node('a'), { command: '' }), { code: 'INVALID_ARGUMENT' });
  await t.rejects(processes.create(node('a'), { command: 'x', cpus: 0 }), {
    code: 'INVALID_ARGUMENT',
  });
  await t.rejects(processes.create(operator, { command: 'x', node: 'c' }), {
    code: 'NO_PLACEMENT',
  });
});

t.test('create by a node: on itself only, whatever the request says', async (t) => {
  const { store, processes } = await setup(t);
  await addNode(store, 'a', 2);
  await addNode(store, 'b', 8);
  const own = await processes.create(node('a'), { command: 'x' });
  t.equal(own.home, 'a', 'no node in the request: placed on the caller, not the idler b');
  await t.rejects(
    processes.create(node('a'), { command: 'x', node: 'b' }),
    { code: 'FORBIDDEN', message: /node a .*node b/ },
    'another node: FORBIDDEN naming both',
  );
  await t.rejects(processes.create(viewer, { command: 'x' }), { code: 'FORBIDDEN' });
  t.equal((await processes.create(operator, { command: 'x', node: 'a' })).home, 'a');
});

t.test('create with a PID of the caller block: idempotent, never two processes', async (t) => {
  const { store, processes } = await setup(t);
  await addNode(store, 'a', 4);
  const block = await processes.claimPidBlock(node('a'), { size: 4 });
  t.match(await processes.listPidBlocks(admin), [{ start: block.start, owner: 'node:a' }]);
  const request = { command: '/bin/sleep', args: ['5'], cpid: block.start };
  const first = await processes.create(node('a'), request);
  t.same(await processes.create(node('a'), request), first, 'a retried create gets the record');
  await t.rejects(processes.create(node('a'), { ...request, args: ['6'] }), {
    code: 'NAME_TAKEN',
  });
  await t.rejects(processes.create(node('b'), { command: 'x', cpid: block.start + 1 }), {
    code: 'FORBIDDEN',
  });
  await t.rejects(processes.create(node('a'), { command: 'x', cpid: 5 }), {
    code: 'INVALID_ARGUMENT',
  });
});

t.test('reports: only the home node, fenced by the epoch; kill by the owner', async (t) => {
  const { store, processes } = await setup(t);
  await addNode(store, 'a', 4);
  const p = await processes.create(node('a'), { command: 'x' });
  await t.rejects(processes.report(node('b'), 'a', p.cpid, { epoch: 1, event: 'running' }), {
    code: 'FORBIDDEN',
  });
  await t.rejects(
    processes.report(node('a'), 'a', p.cpid, { epoch: 1, event: 'nope' as 'running' }),
    { code: 'INVALID_ARGUMENT' },
  );
  await t.rejects(processes.report(node('a'), 'a', p.cpid, { epoch: 2, event: 'running' }), {
    code: 'STALE_EPOCH',
  });
  t.match(await processes.report(node('a'), 'a', p.cpid, { epoch: 1, event: 'running' }), {
    state: 'running',
  });
  await t.rejects(processes.kill(node('b'), p.cpid), { code: 'FORBIDDEN' });
  t.match(await processes.kill(node('a'), p.cpid), { state: 'killed' });
  await t.rejects(processes.get(admin, 999_999_999), { code: 'PROCESS_NOT_FOUND' });
});

t.test('fence-source: a silent source is fenced only after the margin', async (t) => {
  const { store, processes, clock } = await setup(t);
  await addNode(store, 'a', 4);
  await addNode(store, 'b', 4);
  const p = await processes.create(node('a'), { command: 'x', node: 'a' });
  await processes.report(node('a'), 'a', p.cpid, { epoch: 1, event: 'running' });
  await t.rejects(processes.migrate(node('a'), p.cpid, { to: 'b' }), { code: 'FORBIDDEN' });
  await t.rejects(processes.migrate(admin, p.cpid, { to: 'zz' }), { code: 'NODE_NOT_FOUND' });
  const moving = await processes.migrate(admin, p.cpid, { to: 'b' });
  t.match(moving, { state: 'migrating', home: 'b', epoch: 2, migration: { from: 'a' } });

  const fence = () => processes.report(node('b'), 'b', p.cpid, { epoch: 2, event: 'fence-source' });
  t.match((await fence()).migration, { sourceStopped: null, sourceLostAt: null }, 'a is alive');
  await store.txn({ compares: [], onSuccess: [{ type: 'delete', key: nodeKeys.heartbeat('a') }] });
  t.match((await fence()).migration, { sourceStopped: null, sourceLostAt: clock.now });
  clock.now += 1000;
  t.match((await fence()).migration, { sourceStopped: null }, 'within the margin');
  clock.now += 1500;
  t.match((await fence()).migration, { sourceStopped: 'fenced' });
});

t.test('commitRebalanceMove: only a record still as planned moves', async (t) => {
  const { store, processes } = await setup(t);
  await addNode(store, 'a', 4);
  await addNode(store, 'b', 4);
  const p = await processes.create(node('a'), {
    command: 'x',
    node: 'a',
    migratable: 'checkpoint',
  });
  const { nodes, records } = await processes.snapshot();
  t.match(
    nodes.find((n) => n.name === 'a'),
    { demand: 1, ready: true },
  );
  t.same(
    records.map((r) => r.cpid),
    [p.cpid],
  );
  t.match(await processes.commitRebalanceMove({ cpid: p.cpid, from: 'a', to: 'b' }, 7), {
    state: 'pending',
    epoch: 1,
  });
  t.equal((await processes.get(admin, p.cpid)).state, 'pending', 'a stale plan changes nothing');
  const moved = await processes.commitRebalanceMove({ cpid: p.cpid, from: 'a', to: 'b' }, 1);
  t.match(moved, { state: 'migrating', home: 'b', epoch: 2, migration: { reason: 'rebalance' } });
  t.equal(
    await processes.commitRebalanceMove({ cpid: 999_999_999, from: 'a', to: 'b' }, 1),
    null,
    'a record gone is no move',
  );
});

t.test('load reports: the node itself writes; every member reads', async (t) => {
  const { store, processes, clock } = await setup(t);
  await addNode(store, 'a', 4);
  const report = { cpus: 16, cpuSpeed: 2, load1: 0.5, runnable: 1, processes: [] };
  await t.rejects(processes.reportLoad(node('b'), 'a', report), { code: 'FORBIDDEN' });
  t.match(await processes.reportLoad(node('a'), 'a', report), {
    node: 'a',
    reportedAt: clock.now,
    agentAddress: null,
  });
  t.match(await processes.listLoads(admin), [{ node: 'a', cpus: 16 }]);
  t.match((await processes.snapshot()).nodes, [{ name: 'a', cpus: 16, speed: 2 }], 'fresh');
  clock.now += 61_000;
  t.match((await processes.snapshot()).nodes, [{ name: 'a', cpus: 4, speed: 1 }], 'stale');
});

t.test('placementNodes (pure): fresh loads, demand of active records, who is Ready', async (t) => {
  const facts = (name: string, state: 'Ready' | 'Draining' = 'Ready') => ({
    name,
    capacity: { memoryBytes: 1, swapBytes: 0, contributedBytes: 1, cpus: 4, cpuSpeed: 1 },
    labels: {},
    roles: [],
    state,
  });
  const spec = { command: 'x', args: [], migratable: 'restart' as const, cpus: 3, labels: {} };
  const running = newProcessRecord(spec, 100_000, 'a', 'o', 0);
  const killed = { ...newProcessRecord(spec, 100_001, 'a', 'o', 0), state: 'killed' as const };
  const load = (node: string, reportedAt: number) => ({
    node,
    reportedAt,
    cpus: 32,
    cpuSpeed: 3,
    load1: 0,
    runnable: 0,
    agentAddress: null,
    processes: [],
  });
  const nodes = placementNodes({
    nodes: [facts('a'), facts('b'), facts('c', 'Draining')],
    alive: new Set(['a', 'c']),
    loads: [load('a', 100_000), load('b', 0)],
    records: [running, killed],
    now: 100_000 + 59_999,
  });
  t.match(nodes, [
    { name: 'a', cpus: 32, speed: 3, demand: 3, ready: true },
    { name: 'b', cpus: 4, speed: 1, demand: 0, ready: false },
    { name: 'c', ready: false },
  ]);
});

t.test('applyReport (pure): each event is one step of the state machine', async (t) => {
  const spec = { command: 'x', args: [], migratable: 'checkpoint' as const, cpus: 1, labels: {} };
  const r = newProcessRecord(spec, 100_000, 'a', 'o', 0);
  const context = { node: 'a', now: 5, sourceAlive: true, fenceMarginMs: 0 };
  t.match(applyReport(r, { epoch: 1, event: 'running' }, context), { state: 'running' });
  t.match(applyReport(r, { epoch: 1, event: 'exited' }, context), { state: 'exited', exitCode: 0 });
  t.match(applyReport(r, { epoch: 1, event: 'failed' }, context), {
    state: 'failed',
    failure: 'unknown',
  });
  const moving = decideMigration(r, 'b', 'manual', 1);
  t.match(applyReport(moving, { epoch: 2, event: 'source-stopped' }, context).migration, {
    sourceStopped: 'stopped',
  });
  const target = { ...context, node: 'b', sourceAlive: false };
  t.match(applyReport(moving, { epoch: 2, event: 'fence-source' }, target).migration, {
    sourceLostAt: 5,
  });
  t.throws(() => applyReport(r, { epoch: 1, event: 'x' as 'running' }, context), {
    code: 'INVALID_ARGUMENT',
  });
});
