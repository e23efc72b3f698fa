/**
 * The service layer on the embedded store: joins, tokens, authorization,
 * liveness and the network memory space, without any transport.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import type { JoinRequest } from '../../../../services/api/contracts.ts';
import { createControlPlane } from '../../../../services/controlplane/control-plane.ts';
import type { NodeService } from '../../../../services/controlplane/features/nodes/node-service.ts';
import type {
  Caller,
  ControlPlaneRuntime,
} from '../../../../services/controlplane/service/contracts.ts';
import { checkLayout, layoutStats } from '../../../../services/core/memory-layout.ts';
import { checkSegments } from '../../../../services/core/segments.ts';
import { createClusterCa, createKeyAndCsr } from '../../../../services/pki/index.ts';
import { openEmbeddedStore } from '../../../../services/store/embedded-store.ts';
import type { Store } from '../../../../services/store/store.ts';

const admin: Caller = { kind: 'admin' };
const anonymous: Caller = { kind: 'anonymous' };
const node = (name: string): Caller => ({ kind: 'node', name });
const GiB = 1024 ** 3;
const logger = pino({ level: 'silent' });
const ca = await createClusterCa();

async function setup(
  t: Test,
  opts: {
    now?: () => number;
    nodeGraceSeconds?: number;
    join?: { maxContributedBytes?: number };
  } = {},
): Promise<{ cp: ControlPlaneRuntime; store: Store }> {
  const dir = await mkdtemp(join(tmpdir(), 'amalgam-cp-'));
  const store = await openEmbeddedStore({ dataDir: dir });
  const cp = await createControlPlane({
    store,
    singleMachine: true, // every node of this test is on loopback
    ca,
    clusterName: 'test',
    logger,
    controllers: false,
    ...opts,
  });
  t.teardown(async () => {
    await cp.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { cp, store };
}

async function joinRequest(token: string, name: string, bytes = GiB, keyCsr?: { csrPem: string }) {
  const { csrPem } = keyCsr ?? (await createKeyAndCsr({ commonName: name }));
  return {
    token,
    name,
    csr: csrPem,
    capacity: {
      memoryBytes: bytes,
      swapBytes: 0,
      contributedBytes: bytes,
      cpus: 2,
      cpuSpeed: 1000,
    },
  } satisfies JoinRequest;
}

t.test('join: a token, a CSR, a unique name and a 2 MiB-aligned range', async (t) => {
  const { cp } = await setup(t);
  const { token } = await cp.tokens.create(admin, { ttlSeconds: 600, description: 'test' });
  t.match(token, /^[a-z0-9]{6}\.[a-z0-9]{16}$/);
  const csr = await createKeyAndCsr({ commonName: 'a' });
  const joined = await cp.nodes.join(await joinRequest(token, 'node-a', GiB + 1, csr));
  t.equal(joined.node.state, 'Joining');
  t.equal(joined.node.range.size, GiB + 2 * 1024 * 1024, 'size rounded up to 2 MiB');
  t.equal(joined.node.range.start % (2 * 1024 * 1024), 0, 'start 2 MiB aligned');
  t.match(joined.certificate, /BEGIN CERTIFICATE/);
  t.equal(joined.caCertificate, ca.certPem);
  t.equal(joined.rejoined, false);

  const again = await cp.nodes.join(await joinRequest(token, 'node-a', 8 * GiB, csr));
  t.equal(again.rejoined, true, 'the same key re-joins as the same node');
  t.same(again.node.range, joined.node.range, 'and gets the same range back');

  await t.rejects(cp.nodes.join(await joinRequest(token, 'node-a')), { code: 'NAME_TAKEN' });
  const layout = await cp.memory.layout(admin);
  t.equal(layout.layout.ranges.length, 1, 'a refused join took nothing');
});

t.test('token failures each have their own code', async (t) => {
  let clock = Date.now();
  const { cp } = await setup(t, { now: () => clock });
  const good = await cp.tokens.create(admin, { ttlSeconds: 60 });
  const req = await joinRequest(good.token, 'n1');
  await t.rejects(cp.nodes.join({ ...req, token: 'not-a-token' }), { code: 'TOKEN_MALFORMED' });
  await t.rejects(cp.nodes.join({ ...req, token: 'zzzzzz.0123456789abcdef' }), {
    code: 'TOKEN_NOT_FOUND',
  });
  const [id] = good.token.split('.');
  await t.rejects(cp.nodes.join({ ...req, token: `${id}.0123456789abcdef` }), {
    code: 'TOKEN_INVALID',
  });
  clock += 61_000;
  await t.rejects(cp.nodes.join(req), { code: 'TOKEN_EXPIRED' });
  const other = await cp.tokens.create(admin, {});
  await cp.tokens.delete(admin, other.id);
  await t.rejects(
    cp.nodes.join({ ...req, token: other.token }),
    { code: 'TOKEN_NOT_FOUND' },
    'deleted',
  );
  await t.rejects(cp.tokens.delete(admin, other.id), { code: 'NOT_FOUND' });
  t.same((await cp.nodes.list(admin)).length, 0, 'no failed join left a node behind');
  const listed = await cp.tokens.list(admin);
  t.notOk(
    JSON.stringify(listed).includes(good.token.split('.')[1] ?? '?'),
    'secrets are never listed',
  );
});

t.test('bad CSRs and bad fields are refused before anything is claimed', async (t) => {
  // The per-join quota as large as the space: the space itself refuses what it cannot hold.
  const { cp } = await setup(t, { join: { maxContributedBytes: 2 ** 52 } });
  const { token } = await cp.tokens.create(admin, {});
  const req = await joinRequest(token, 'n1');
  await t.rejects(cp.nodes.join({ ...req, csr: 'garbage' }), { code: 'CSR_INVALID' });
  await t.rejects(cp.nodes.join({ ...req, name: 'Bad_Name' }), { code: 'INVALID_ARGUMENT' });
  await t.rejects(cp.nodes.join({ ...req, capacity: { ...req.capacity, contributedBytes: -1 } }), {
    code: 'INVALID_ARGUMENT',
    details: { field: 'capacity.contributedBytes' },
  });
  await t.rejects(
    cp.nodes.join({ ...req, capacity: { ...req.capacity, contributedBytes: 2 ** 52 } }),
    {
      code: 'RANGE_EXHAUSTED',
    },
  );
  t.same((await cp.memory.layout(admin)).layout.ranges, []);
});

t.test('authorization: anonymous, other nodes and non-admins are refused', async (t) => {
  const { cp } = await setup(t);
  const { token } = await cp.tokens.create(admin, {});
  await cp.nodes.join(await joinRequest(token, 'a'));
  await cp.nodes.join(await joinRequest(token, 'b'));
  const load = { load1: 0.5, load5: 0.4, load15: 0.3, memoryUsedBytes: 1024, processes: 10 };
  await t.rejects(cp.nodes.list(anonymous), { code: 'UNAUTHENTICATED' });
  await t.rejects(cp.tokens.create(anonymous, {}), { code: 'UNAUTHENTICATED' });
  await t.rejects(cp.tokens.create(node('a'), {}), { code: 'FORBIDDEN' });
  await t.rejects(cp.nodes.heartbeat(node('a'), 'b', load), { code: 'FORBIDDEN' });
  await t.rejects(cp.nodes.remove(node('a'), 'a'), { code: 'FORBIDDEN' });
  await t.rejects(cp.nodes.drain(node('a'), 'b'), { code: 'FORBIDDEN' });
  const seg = await cp.memory.allocateSegment(node('a'), { size: 4096 });
  await t.rejects(cp.memory.freeSegment(node('b'), seg.id), { code: 'FORBIDDEN' });
  await cp.memory.freeSegment(node('a'), seg.id);
  const beat = await cp.nodes.heartbeat(node('a'), 'a', load);
  t.equal(beat.state, 'Ready', 'a heartbeat makes a joining node Ready');
  t.same(beat.load, load);
  t.equal(beat.pageserver, null, 'no page server published yet');
});

t.test('heartbeat: the node publishes where its page server listens', async (t) => {
  const { cp } = await setup(t);
  const { token } = await cp.tokens.create(admin, {});
  await cp.nodes.join(await joinRequest(token, 'a'));
  const load = { load1: 0, load5: 0, load15: 0, memoryUsedBytes: 0, processes: 1 };
  const endpoint = { address: '127.0.0.1:7070', tls: false };
  await t.rejects(cp.nodes.heartbeat(admin, 'a', load, endpoint), { code: 'FORBIDDEN' });
  const beat = await cp.nodes.heartbeat(node('a'), 'a', load, endpoint);
  t.same(beat.pageserver, endpoint);
  t.same((await cp.nodes.list(admin))[0]?.pageserver, endpoint, 'lists show it');
  const v6 = { address: '[::1]:65535', tls: true };
  t.same((await cp.nodes.heartbeat(node('a'), 'a', load, v6)).pageserver, v6);
  for (const address of ['127.0.0.1', '127.0.0.1:0', 'host:65536', ':80', 'a b:80', '::1:80']) {
    await t.rejects(
      cp.nodes.heartbeat(node('a'), 'a', load, { address, tls: false }),
      { code: 'INVALID_ARGUMENT', details: { field: 'pageserver.address' } },
      address,
    );
  }
  await t.rejects(
    cp.nodes.heartbeat(node('a'), 'a', load, { address: 'h:1', tls: 'yes' as never }),
    { code: 'INVALID_ARGUMENT', details: { field: 'pageserver.tls' } },
  );
  t.equal(
    (await cp.nodes.heartbeat(node('a'), 'a', load)).pageserver,
    null,
    'a beat without it clears it',
  );
});

t.test('50 machines join at once: 50 disjoint ranges, every byte accounted for', async (t) => {
  const { cp } = await setup(t);
  const { token } = await cp.tokens.create(admin, {});
  const requests = await Promise.all(
    Array.from({ length: 50 }, (_, i) => joinRequest(token, `m${i}`, (i + 1) * 64 * 1024 * 1024)),
  );
  const results = await Promise.all(requests.map((r) => cp.nodes.join(r)));
  const { layout } = await cp.memory.layout(admin);
  t.same(checkLayout(layout), [], 'no overlap, all aligned, inside the space');
  t.equal(layout.ranges.length, 50);
  const stats = layoutStats(layout);
  const sum = results.reduce((acc, r) => acc + r.node.range.size, 0);
  t.equal(stats.allocatedBytes, sum, 'allocated bytes = the ranges handed out');
  t.equal(stats.allocatedBytes + stats.freeBytes, stats.spaceBytes, 'every byte accounted for');
  for (const r of results) {
    const stored = layout.ranges.find((x) => x.node === r.node.name);
    t.same(stored && { start: stored.start, size: stored.size }, r.node.range);
  }
});

t.test(
  'liveness: an expired heartbeat lease makes a node NotReady; remove frees its range',
  async (t) => {
    const { cp, store } = await setup(t, { nodeGraceSeconds: 1 });
    const { token } = await cp.tokens.create(admin, {});
    await cp.nodes.join(await joinRequest(token, 'a'));
    const load = { load1: 0, load5: 0, load15: 0, memoryUsedBytes: 0, processes: 0 };
    await cp.nodes.heartbeat(node('a'), 'a', load);
    const { startNodeLifecycleController } = await import(
      '../../../../services/controlplane/controllers/node-lifecycle.ts'
    );
    const controller = startNodeLifecycleController({
      // The runtime's nodes are the node service, with the functions controllers call.
      nodes: cp.nodes as NodeService,
      nodeGraceSeconds: 1,
      now: Date.now,
      logger,
    });
    t.teardown(() => controller.stop());
    t.equal(await controller.reconcile(), 0, 'a live node is left alone');
    // The heartbeat key vanishes with its lease; the controller's informer sees it go.
    const watch = store.watch('/amalgam/v1/heartbeats/');
    for await (const ev of watch) if (ev.type === 'delete') break;
    await watch.close();
    while ((await cp.nodes.get(admin, 'a')).state !== 'NotReady') {
      await new Promise((r) => setTimeout(r, 50));
    }
    t.equal(await controller.reconcile(), 1, 'one node marked');
    t.equal((await cp.nodes.get(admin, 'a')).state, 'NotReady');
    const range = (await cp.nodes.get(admin, 'a')).range;
    t.ok(range.size > 0, 'a missed heartbeat never frees the range');
    await cp.nodes.heartbeat(node('a'), 'a', load);
    t.equal((await cp.nodes.get(admin, 'a')).state, 'Ready', 'a heartbeat brings it back');

    const seg = await cp.memory.allocateSegment(admin, {
      size: 4096,
      placement: { mode: 'pinned', node: 'a' },
    });
    await t.rejects(cp.nodes.remove(admin, 'a'), { code: 'NODE_IN_USE' });
    await cp.memory.freeSegment(admin, seg.id);
    await cp.nodes.remove(admin, 'a');
    t.same((await cp.memory.layout(admin)).layout.ranges, [], 'removal frees the range');
    await t.rejects(cp.nodes.get(admin, 'a'), { code: 'NODE_NOT_FOUND' });
  },
);

t.test('segments: spread and pinned extents inside node ranges, exhaustion', async (t) => {
  const { cp } = await setup(t);
  const { token } = await cp.tokens.create(admin, {});
  for (const name of ['a', 'b', 'c'])
    await cp.nodes.join(await joinRequest(token, name, 64 * 1024 ** 2));
  const spread = await cp.memory.allocateSegment(admin, { size: 48 * 1024 ** 2, id: 'spread-1' });
  t.equal(new Set(spread.extents.map((e) => e.node)).size, 3, 'spread over every node');
  const again = await cp.memory.allocateSegment(admin, { size: 48 * 1024 ** 2, id: 'spread-1' });
  t.same(again, spread, 'the same id is idempotent');
  const pinned = await cp.memory.allocateSegment(admin, {
    size: 8 * 1024 ** 2,
    placement: { mode: 'pinned', node: 'b' },
  });
  t.ok(pinned.extents.every((e) => e.node === 'b'));
  await t.rejects(cp.memory.allocateSegment(admin, { size: 1024 ** 3 }), {
    code: 'RANGE_EXHAUSTED',
  });
  await t.rejects(cp.memory.allocateSegment(admin, { size: 0 }), { code: 'INVALID_ARGUMENT' });
  await t.rejects(
    cp.memory.allocateSegment(admin, { size: 4096, placement: { mode: 'pinned', node: 'zz' } }),
    { code: 'NODE_NOT_FOUND' },
  );
  const { layout } = await cp.memory.layout(admin);
  const segments = await cp.memory.listSegments(admin);
  t.same(
    checkSegments(layout, { segments: segments.map((s) => ({ ...s })) as never }),
    [],
    'segment invariants hold',
  );
  await cp.memory.freeSegment(admin, spread.id);
  await t.rejects(cp.memory.getSegment(admin, spread.id), { code: 'SEGMENT_NOT_FOUND' });
  const stats = await cp.stats();
  t.equal(stats.nodesByState.Joining, 3);
});

t.test('watch: members watch nodes, heartbeats and memory, never tokens; resumable', async (t) => {
  const { cp, store } = await setup(t);
  t.throws(() => cp.watch.open(anonymous, { prefix: 'nodes/' }), { code: 'UNAUTHENTICATED' });
  t.throws(() => cp.watch.open(admin, { prefix: 'tokens/' }), { code: 'INVALID_ARGUMENT' });
  t.throws(() => cp.watch.open(admin, { prefix: '' }), { code: 'INVALID_ARGUMENT' });
  t.throws(() => cp.watch.open(admin, { prefix: 'nodes/', fromRevision: 0 }), {
    code: 'INVALID_ARGUMENT',
  });
  const from = (await store.revision()) + 1;
  const { token } = await cp.tokens.create(admin, {});
  await cp.nodes.join(await joinRequest(token, 'a'));
  await cp.nodes.join(await joinRequest(token, 'b'));
  const seen = [];
  const watch = cp.watch.open(node('a'), { prefix: 'nodes/', fromRevision: from });
  for await (const ev of watch) {
    seen.push(ev);
    if (seen.length === 2) break;
  }
  t.same(
    seen.map((e) => [e.type, e.key, (e.value as { name: string }).name]),
    [
      ['put', 'nodes/a', 'a'],
      ['put', 'nodes/b', 'b'],
    ],
    'relative keys, parsed values, in order, no token event',
  );
  t.same(seen[1]?.value, await cp.nodes.get(admin, 'b'), 'a value is what GET answers');
  const resumed = cp.watch.open(node('a'), {
    prefix: 'nodes/',
    fromRevision: (seen[0]?.revision ?? 0) + 1,
  });
  for await (const ev of resumed) {
    t.equal(ev.key, 'nodes/b', 'resuming after the first event starts at the second');
    break;
  }
});

t.test('watch values are the views GET answers: heartbeats and memory', async (t) => {
  const { cp, store } = await setup(t);
  const { token } = await cp.tokens.create(admin, {});
  await cp.nodes.join(await joinRequest(token, 'a'));
  const from = (await store.revision()) + 1;
  const load = { load1: 1, load5: 0, load15: 0, memoryUsedBytes: 0, processes: 0 };
  await cp.nodes.heartbeat(node('a'), 'a', load, { address: '127.0.0.1:7000', tls: false });
  await cp.memory.allocateSegment(admin, { size: 4096, id: 'seg' });
  const events = new Map<string, unknown>();
  for (const [prefix, fromRevision] of [
    ['heartbeats/', from],
    ['memory/', 1],
  ] as const) {
    const watch = cp.watch.open(node('a'), { prefix, fromRevision });
    for await (const ev of watch) {
      events.set(ev.key, ev.value);
      if (prefix === 'heartbeats/' || ev.key === 'memory/segments') break;
    }
    await watch.close();
  }
  const view = await cp.nodes.get(admin, 'a');
  t.same(events.get('heartbeats/a'), {
    name: 'a',
    lastHeartbeatAt: view.lastHeartbeatAt,
    load: view.load,
    pageserver: view.pageserver,
  });
  t.same(events.get('memory/segments'), await cp.memory.listSegments(admin));
  t.same(events.get('memory/layout'), await cp.memory.layout(admin));
});

t.test('leader election: one leader among replicas; another takes over when it goes', async (t) => {
  const { cp: first, store } = await setup(t);
  await first.close(); // the setup replica runs no controllers; use two fresh ones on its store
  const replicas = await Promise.all(
    [0, 1, 2].map(() =>
      createControlPlane({
        store,
        ca,
        clusterName: 'test',
        logger,
        leaderTtlSeconds: 1,
        singleMachine: true,
      }),
    ),
  );
  t.teardown(() => Promise.all(replicas.map((r) => r.close())));
  const until = async (what: string, check: () => boolean) => {
    for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 50));
    t.ok(check(), what);
  };
  await until('a leader is elected', () => replicas.some((r) => r.isLeader()));
  t.equal(replicas.filter((r) => r.isLeader()).length, 1, 'exactly one leader');
  const leader = replicas.find((r) => r.isLeader());
  await leader?.close();
  const rest = replicas.filter((r) => r !== leader);
  await until('another replica takes over', () => rest.some((r) => r.isLeader()));
  t.equal(rest.filter((r) => r.isLeader()).length, 1, 'still exactly one leader');
  t.equal((await rest[0]?.cluster.info(admin))?.name, 'test');
});
