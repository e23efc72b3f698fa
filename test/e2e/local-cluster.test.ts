/**
 * deploy/local end to end: 3 control machines + 3 workers, each in its own network namespace,
 * built as an operator would (etcd grown by member add, clusteradm init / token create / join,
 * clusteragent on each worker). Then a partition isolates one control machine: the majority
 * keeps accepting joins and allocations, the isolated one acknowledges nothing, and after the
 * heal it serves again and nothing the majority acknowledged is lost. On the way, a real
 * Prometheus with deploy/prometheus's configuration scrapes every clusterd, agent and etcd member.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { writePrometheusDir } from '../../deploy/local/prometheus.ts';
import type { AmalgamClient } from '../../services/client/index.ts';
import { createKeyAndCsr } from '../../services/pki/index.ts';
import { startLocalCluster } from '../harness/netns.ts';
import { freePorts } from '../harness/processes.ts';
import { until } from '../harness/until.ts';

const MiB = 1024 * 1024;

async function joinAs(client: AmalgamClient, token: string, name: string) {
  const { csrPem } = await createKeyAndCsr({ commonName: name });
  return client.nodes.join({
    token,
    name,
    csr: csrPem,
    capacity: {
      memoryBytes: 256 * MiB,
      swapBytes: 0,
      contributedBytes: 64 * MiB,
      cpus: 1,
      cpuSpeed: 1,
    },
  });
}

// Machines in namespaces start slowly on a loaded 2-core runner: more than tap's 300 s default.
t.setTimeout(600_000);

t.test('3 control + 3 workers: up, partition a minority control machine, heal', async (t) => {
  const cluster = await startLocalCluster(t, { control: 3, workers: 3, timeoutMs: 180_000 });
  const admin = cluster.client();
  t.teardown(() => admin.close());

  const nodes = await until(
    'all 3 workers Ready',
    async () => {
      const list = await admin.nodes.list();
      return list.length === 3 && list.every((n) => n.state === 'Ready') ? list : undefined;
    },
    120_000,
  );
  t.same(nodes.map((n) => n.name).sort(), ['w0', 'w1', 'w2'], 'the workers joined by name');

  const members = await cluster.etcdMembers();
  t.same(members.map((m) => m.name).sort(), ['c0', 'c1', 'c2'], 'etcd has 3 members');

  const segment = await admin.memory.allocateSegment({ id: 'e2e-spread', size: 96 * MiB });
  t.same(
    new Set(segment.extents.map((e) => e.node)),
    new Set(['w0', 'w1', 'w2']),
    'a spread segment lands on all 3 workers',
  );

  await t.test('a real prometheus scrapes every clusterd, agent and etcd member', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), `amalgam-prometheus-${process.pid}-`));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const config = writePrometheusDir(cluster.state, dir, { scrapeInterval: '1s' });
    const [port] = await freePorts(1);
    const prometheus = spawn(
      'prometheus',
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: ['ignore', 'ignore', openSync(join(dir, 'prometheus.log'), 'a')] },
    );
    t.teardown(() => {
      prometheus.kill('SIGKILL');
    });
    const api = `http://127.0.0.1:${port}/api/v1`;
    const get = async (path: string) => {
      const r = await fetch(`${api}${path}`);
      return (await r.json()) as { status: string; data: unknown };
    };
    type Target = { labels: { job: string; instance: string }; health: string; lastError: string };
    const expected = cluster.control.length * 2 + cluster.workers.length;
    const targets = await until(
      `all ${expected} targets up`,
      async () => {
        const r = await get('/targets?state=active');
        const active = (r.data as { activeTargets: Target[] }).activeTargets;
        return active.length === expected && active.every((x) => x.health === 'up')
          ? active
          : undefined;
      },
      60_000,
    ).catch((err: Error) => {
      throw new Error(
        `${err.message}\n${readFileSync(join(dir, 'prometheus.log'), 'utf8').slice(-2000)}`,
      );
    });
    const jobs = (job: string) => targets.filter((x) => x.labels.job === job).length;
    t.equal(jobs('clusterd'), 3, 'every clusterd is up');
    t.equal(jobs('clusteragent'), 3, 'every agent is up');
    t.equal(jobs('etcd'), 3, 'every etcd member is up');
    const rules = await get('/rules');
    t.equal(rules.status, 'success');
    const loaded = (rules.data as { groups: { rules: unknown[] }[] }).groups.flatMap(
      (g) => g.rules,
    );
    t.ok(loaded.length >= 4, `the alert rules are loaded (${loaded.length})`);
    // Every query of the dashboard is valid PromQL on this Prometheus.
    const dashboard = JSON.parse(
      readFileSync(new URL('../../deploy/prometheus/dashboard.json', import.meta.url), 'utf8'),
    ) as { panels: { title: string; targets: { expr: string }[] }[] };
    for (const panel of dashboard.panels) {
      for (const q of panel.targets) {
        const r = await get(`/query?query=${encodeURIComponent(q.expr)}`);
        t.equal(r.status, 'success', `dashboard query of "${panel.title}" runs`);
      }
    }
    const ready = await get(
      `/query?query=${encodeURIComponent('max(amalgam_nodes{state="Ready"})')}`,
    );
    const value = (ready.data as { result: { value: [number, string] }[] }).result[0]?.value[1];
    t.equal(value, '3', 'prometheus sees 3 Ready nodes');
  });

  // Tokens first: every replica then knows them.
  const { token } = await admin.tokens.create({ description: 'e2e partition' });

  cluster.partition([['c0']]);
  t.teardown(() => cluster.heal());

  const majority = cluster.client(['c1', 'c2'], 30_000);
  const minority = cluster.client(['c0'], 20_000);
  t.teardown(() => Promise.all([majority.close(), minority.close()]));

  // The majority elects (if it must) and keeps serving: a join and an allocation succeed.
  const joined = await until(
    'a join through the majority',
    () => joinAs(majority, token, 'during-partition'),
    60_000,
  );
  t.equal(joined.node.name, 'during-partition');
  const allocated = await until(
    'an allocation through the majority',
    () => majority.memory.allocateSegment({ id: 'majority-seg', size: 8 * MiB }),
    60_000,
  );
  t.ok(allocated.extents.length > 0, 'the majority allocates');

  // The isolated control machine acknowledges nothing.
  const minorityJoin = await joinAs(minority, token, 'minority-node').then(
    () => 'acknowledged',
    (err: { code?: string }) => err.code ?? 'error',
  );
  t.not(minorityJoin, 'acknowledged', `a join on the minority is refused (${minorityJoin})`);
  const minorityAlloc = await minority.memory
    .allocateSegment({ id: 'minority-seg', size: 8 * MiB })
    .then(
      () => 'acknowledged',
      (err: { code?: string }) => err.code ?? 'error',
    );
  t.not(
    minorityAlloc,
    'acknowledged',
    `an allocation on the minority is refused (${minorityAlloc})`,
  );

  cluster.heal();
  const healed = cluster.client(['c0'], 30_000);
  t.teardown(() => healed.close());
  await until(
    'c0 serves again after the heal',
    () => healed.memory.allocateSegment({ id: 'after-heal', size: 4 * MiB }),
    90_000,
  );
  const names = (await admin.nodes.list()).map((n) => n.name);
  t.ok(names.includes('during-partition'), 'the join the majority acknowledged is kept');
  const segments = (await admin.memory.listSegments()).map((s) => s.id);
  t.ok(segments.includes('majority-seg'), 'the allocation the majority acknowledged is kept');
  t.ok(segments.includes('e2e-spread'), 'the allocation before the partition is kept');
});
