/**
 * The network process space end to end on 2 nodes (2 agent processes, one
 * clusterd): run a checkpointing process on a node, migrate it by hand, and
 * find its counter continuing on the target; the interval log shows the two
 * copies never overlapped; kill ends it everywhere; an exiting process is
 * recorded with its exit code.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runClusteradm } from '../../services/cli/main.ts';
import { COUNTER_FIXTURE, overlaps, startProcCluster } from '../harness/proc-cluster.ts';
import { until } from '../harness/until.ts';

const cluster = await startProcCluster({
  nodes: [
    { name: 'pa', cpus: 1 },
    { name: 'pb', cpus: 1 },
  ],
  processes: { rebalance: false },
});
t.teardown(() => cluster.destroy());
const { admin } = cluster;
const counters = join(cluster.root, 'counters.log');

const events = async (cpid: number) =>
  (await readFile(counters, 'utf8').catch(() => ''))
    .split('\n')
    .filter(Boolean)
    .map(
      (l) =>
        JSON.parse(l) as {
          cpid: number;
          epoch: number;
          node: string;
          event: string;
          counter: number;
        },
    )
    .filter((e) => e.cpid === cpid);

t.test('run, migrate with a checkpoint, kill', async (t) => {
  const p = await admin.create({
    command: process.execPath,
    args: [COUNTER_FIXTURE, '--log', counters, '--unit', '200000'],
    migratable: 'checkpoint',
    node: 'pa',
  });
  t.equal(p.home, 'pa');
  t.equal(p.state, 'pending');
  t.ok(p.cpid >= 100000, 'a cluster PID from a block');
  await until(
    'the process to run on pa',
    async () => (await admin.get(p.cpid)).state === 'running' || undefined,
  );
  await until('some work done', async () => (await events(p.cpid)).length > 0 || undefined);
  await new Promise((r) => setTimeout(r, 500));

  const moved = await admin.migrate(p.cpid, 'pb');
  t.equal(moved.epoch, 2, 'the decision bumps the epoch');
  t.equal(moved.state, 'migrating');
  t.equal(moved.home, 'pb');
  const after = await until(
    'the process to run on pb',
    async () => {
      const r = await admin.get(p.cpid);
      return r.state === 'running' && r.home === 'pb' ? r : undefined;
    },
    60_000,
  );
  t.equal(after.epoch, 2);
  const ev = await until('the start on pb', async () => {
    const e = await events(p.cpid);
    return e.some((x) => x.node === 'pb' && x.event === 'start') ? e : undefined;
  });
  const checkpoint = ev.find((e) => e.event === 'checkpoint' && e.node === 'pa');
  const resumed = ev.find((e) => e.event === 'start' && e.node === 'pb');
  t.ok(checkpoint && checkpoint.counter > 0, 'pa wrote a checkpoint with progress');
  t.equal(resumed?.counter, checkpoint?.counter, 'pb resumed from exactly that counter');

  const list = await admin.list();
  t.ok(
    list.some((r) => r.cpid === p.cpid),
    'ps lists it',
  );

  const killed = await admin.kill(p.cpid);
  t.equal(killed.state, 'killed');
  await until('no copy left', async () => {
    const text = await readFile(cluster.intervalLog, 'utf8');
    const lines = text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { cpid: number; event: string });
    const mine = lines.filter((l) => l.cpid === p.cpid);
    return (
      mine.filter((l) => l.event === 'start').length ===
        mine.filter((l) => l.event === 'end').length || undefined
    );
  });
  t.same(
    overlaps(await readFile(cluster.intervalLog, 'utf8')),
    [],
    'no two copies ever overlapped',
  );
});

t.test(
  'a process that exits is recorded with its code; migratable never does not move',
  async (t) => {
    const p = await admin.create({
      command: '/bin/sh',
      args: ['-c', 'echo hello; exit 3'],
      migratable: 'never',
    });
    const done = await until('the exit to be recorded', async () => {
      const r = await admin.get(p.cpid);
      return r.state === 'exited' ? r : undefined;
    });
    t.equal(done.exitCode, 3);
    await admin.migrate(p.cpid, done.home === 'pa' ? 'pb' : 'pa').then(
      () => t.fail('moved a never-migratable process'),
      (err: { code?: string }) => t.equal(err.code, 'PROCESS_NOT_MIGRATABLE'),
    );
    const missing = await admin.create({ command: '/nonexistent/binary' });
    const failed = await until('the failure to be recorded', async () => {
      const r = await admin.get(missing.cpid);
      return r.state === 'failed' || r.state === 'exited' ? r : undefined;
    });
    t.ok(
      failed.state === 'failed' || failed.exitCode !== 0,
      `a missing binary is a recorded failure (${failed.state})`,
    );
  },
);

t.test('clusteradm run, ps, logs, migrate and kill', async (t) => {
  const home = join(cluster.root, 'admin-home');
  await mkdir(home, { recursive: true });
  await writeFile(join(home, 'ca.crt'), cluster.cd.admin.ca);
  await writeFile(join(home, 'admin.crt'), cluster.cd.admin.cert);
  await writeFile(join(home, 'admin.key'), cluster.cd.admin.key, { mode: 0o600 });
  await writeFile(
    join(home, 'admin.json'),
    JSON.stringify({
      server: cluster.cd.urls,
      caFile: 'ca.crt',
      certFile: 'admin.crt',
      keyFile: 'admin.key',
    }),
  );
  const cli = async (words: string[], ...rest: string[]) => {
    let stdout = '';
    let stderr = '';
    const code = await runClusteradm([...words, '--home', home, ...rest], {
      stdout: (text) => {
        stdout += text;
      },
      stderr: (text) => {
        stderr += text;
      },
      env: {},
      userHome: tmpdir(),
      cwd: cluster.root,
      now: Date.now,
      hostname,
    });
    return { code, stdout, stderr };
  };
  const ran = await cli(
    ['run'],
    '--node',
    'pb',
    '-o',
    'json',
    '--',
    '/bin/sh',
    '-c',
    'echo hello-from-the-cluster; sleep 60',
  );
  t.equal(ran.code, 0, ran.stderr);
  const { cpid } = JSON.parse(ran.stdout) as { cpid: number };
  await until('it to run', async () => (await admin.get(cpid)).state === 'running' || undefined);
  const ps = await cli(['ps']);
  t.match(ps.stdout, new RegExp(`${cpid}\\s+pb\\s+running`), 'ps shows it running on pb');
  const logs = await until('its output', async () => {
    const out = await cli(['logs', String(cpid)]);
    return out.stdout.includes('hello-from-the-cluster') ? out : undefined;
  });
  t.equal(logs.code, 0);
  const moved = await cli(['migrate', String(cpid)], '--to', 'pa');
  t.equal(moved.code, 0, moved.stderr);
  t.match(moved.stdout, 'migrating pb -> pa (epoch 2)');
  await until('it to run on pa', async () => {
    const r = await admin.get(cpid);
    return (r.state === 'running' && r.home === 'pa') || undefined;
  });
  const killed = await cli(['kill', String(cpid)]);
  t.equal(killed.code, 0);
  t.match(killed.stdout, 'killed');
  const missing = await cli(['kill', '999999']);
  t.equal(missing.code, 1);
  t.match(missing.stderr, 'PROCESS_NOT_FOUND');
});
