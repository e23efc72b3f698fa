/**
 * The split-brain rule, end to end: machines that join at the same instant,
 * through different clusterd replicas, never get overlapping ranges; without
 * a quorum nothing is handed out at all.
 */
import t, { type Test } from 'tap';
import type { JoinRequest, JoinResult } from '../../services/api/contracts.ts';
import { type AmalgamClient, createClient } from '../../services/client/index.ts';
import { checkLayout, layoutStats } from '../../services/core/memory-layout.ts';
import { createKeyAndCsr } from '../../services/pki/index.ts';
import {
  type ClusterdReplicas,
  type StoreConfig,
  startClusterdReplicas,
} from '../harness/clusterd.ts';
import { startEtcdCluster } from '../harness/etcd-cluster.ts';

const MiB = 1024 * 1024;
const MACHINES = 50;

async function machine(token: string, i: number): Promise<JoinRequest> {
  const name = `machine-${i}`;
  const { csrPem } = await createKeyAndCsr({ commonName: name });
  // Sizes differ so that a range handed out twice could not hide behind equal sizes.
  const bytes = (1 + (i % 7)) * 64 * MiB + i * 4096;
  return {
    token,
    name,
    csr: csrPem,
    capacity: { memoryBytes: bytes, swapBytes: 0, contributedBytes: bytes, cpus: 1, cpuSpeed: 100 },
  };
}

/** Retries while the store is still electing a leader after members return. */
async function onceQuorate<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if ((err as { code?: string }).code !== 'NO_QUORUM' || attempt >= 10) throw err;
    }
  }
}

function adminClient(cd: ClusterdReplicas, t: Test): AmalgamClient {
  const client = createClient({ endpoints: cd.urls, ...cd.admin });
  t.teardown(() => client.close());
  return client;
}

async function fiftyJoinAtOnce(t: Test, cd: ClusterdReplicas): Promise<void> {
  const admin = adminClient(cd, t);
  const { token } = await admin.tokens.create({ ttlSeconds: 600, description: 'split-brain test' });
  // Everything is prepared first (keys, CSRs, connections), then released together.
  const requests = await Promise.all(Array.from({ length: MACHINES }, (_, i) => machine(token, i)));
  const clients = requests.map((_, i) =>
    createClient({ endpoints: [cd.urls[i % cd.urls.length] as string], ca: cd.admin.ca }),
  );
  t.teardown(() => Promise.all(clients.map((c) => c.close())));
  const results: JoinResult[] = await Promise.all(
    clients.map((client, i) => client.nodes.join(requests[i] as JoinRequest)),
  );

  const { layout } = await admin.memory.layout();
  t.same(checkLayout(layout), [], 'no two ranges overlap; all aligned and inside the space');
  t.equal(layout.ranges.length, MACHINES, `${MACHINES} ranges`);
  t.equal(new Set(results.map((r) => r.node.range.start)).size, MACHINES, 'every start distinct');
  for (const r of results) {
    const stored = layout.ranges.find((x) => x.node === r.node.name);
    t.same(
      stored && { start: stored.start, size: stored.size },
      r.node.range,
      `${r.node.name} holds what it was told`,
    );
    t.ok(
      r.node.range.size >= r.node.capacity.contributedBytes,
      `${r.node.name}'s range covers its bytes`,
    );
  }
  const stats = layoutStats(layout);
  const handedOut = results.reduce((sum, r) => sum + r.node.range.size, 0);
  t.equal(stats.allocatedBytes, handedOut, 'allocated bytes are exactly the ranges handed out');
  t.equal(stats.allocatedBytes + stats.freeBytes, stats.spaceBytes, 'every byte accounted for');
  const nodes = await admin.nodes.list();
  t.equal(nodes.length, MACHINES, 'every machine is a node');
}

t.test('etcd, 3 members, 3 clusterd replicas', async (t) => {
  const etcd = await startEtcdCluster({ size: 3 });
  t.teardown(() => etcd.destroy());
  const store: StoreConfig = etcd.storeConfig();
  const cd = await startClusterdReplicas({ count: 3, store });
  t.teardown(() => cd.destroy());

  await t.test(`${MACHINES} machines join at the same instant through different replicas`, (t) =>
    fiftyJoinAtOnce(t, cd),
  );

  await t.test('without a quorum a join fails with NO_QUORUM and takes nothing', async (t) => {
    const admin = adminClient(cd, t);
    const { token } = await admin.tokens.create({ ttlSeconds: 600 });
    const before = (await admin.memory.layout()).layout;
    const late = await machine(token, 1000);
    const joiner = createClient({
      endpoints: [cd.urls[0] as string],
      ca: cd.admin.ca,
      timeoutMs: 60_000,
    });
    t.teardown(() => joiner.close());

    await etcd.kill(1);
    await etcd.kill(2);
    const startedAt = Date.now();
    await t.rejects(
      joiner.nodes.join(late),
      { code: 'NO_QUORUM', status: 503 },
      'refused: 503 NO_QUORUM',
    );
    const elapsed = Date.now() - startedAt;
    // A bound against hanging, not a benchmark: the store gives up after its operation timeout.
    t.ok(elapsed < 30_000, `refused after ${elapsed} ms`);

    await etcd.restart(1);
    await etcd.restart(2);
    const after = (await onceQuorate(() => admin.memory.layout())).layout;
    t.same(after, before, 'nothing was allocated while there was no quorum');
    const joined = await onceQuorate(() => joiner.nodes.join(late));
    t.equal(joined.node.name, 'machine-1000', 'after the restart the join succeeds');
    t.same(checkLayout((await admin.memory.layout()).layout), []);
  });
});

t.test('embedded store, one clusterd', async (t) => {
  const cd = await startClusterdReplicas({ count: 1, store: { backend: 'embedded' } });
  t.teardown(() => cd.destroy());
  await t.test(`${MACHINES} machines join at the same instant`, (t) => fiftyJoinAtOnce(t, cd));
});
