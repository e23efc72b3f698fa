/**
 * The process space refuses to harm, on a cluster: one clusterd and 2 agent
 * processes (`sa` allows root, `sb` does not). A process runs as nobody by
 * default (its /proc status says so); root runs only where the node allows it
 * and for an admin's process, else the process fails with ROOT_NOT_ALLOWED
 * (in its record and the agent's log); and a wall-clock step of -60 s on a
 * frozen source during a migration leaves no overlapping copies (the
 * interval log of the exactly-once suite, CLOCK_MONOTONIC).
 *
 * The clock step: a test cannot set the machine's clock, so the source agent
 * and its fence shims load test/fixtures/wall-clock-shift.mjs (through
 * NODE_OPTIONS, which the agent hands to its shims), which moves what `Date`
 * says by the offset in a file, the way `date -s` would, and leaves
 * CLOCK_MONOTONIC alone. libfaketime would fake the monotonic clock too
 * unless told not to, needs an OS package on every machine, and preloading
 * it into Node is fragile; the JS preload steps exactly the clock the old
 * code read (Date.now) in exactly the processes concerned.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { runClusteradm } from '../../services/cli/main.ts';
import { createClient } from '../../services/client/index.ts';
import { COUNTER_FIXTURE, overlaps, startProcCluster } from '../harness/proc-cluster.ts';
import { until } from '../harness/until.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const GRACE = 3;
const MARGIN = 1;
const clockDir = tmpdir();
const offsetFile = join(clockDir, `amalgam-sa-clock-${process.pid}`);
const preload = join(clockDir, `amalgam-sa-clock-${process.pid}.mjs`);
await writeFile(offsetFile, '0');
await writeFile(
  preload,
  `import { install } from ${JSON.stringify(join(REPO, 'test/fixtures/wall-clock-shift.mjs'))};\ninstall(${JSON.stringify(offsetFile)});\n`,
);

const cluster = await startProcCluster({
  nodes: [
    {
      name: 'sa',
      cpus: 2,
      processes: { allowRoot: true },
      env: { NODE_OPTIONS: `--import=${preload}` },
    },
    { name: 'sb', cpus: 2 },
  ],
  nodeGraceSeconds: GRACE,
  leaseSeconds: GRACE,
  processes: { rebalance: false, fenceMarginSeconds: MARGIN },
});
t.teardown(async () => {
  await cluster.destroy();
  const { rm } = await import('node:fs/promises');
  await rm(offsetFile, { force: true });
  await rm(preload, { force: true });
});
const { admin } = cluster;

/** The pid of the copy of `cpid` on `node` (its agent's copy record). */
async function copyPid(node: string, cpid: number): Promise<number> {
  return until(`the copy of ${cpid} on ${node}`, async () => {
    const file = join(cluster.root, node, 'data', 'proc', String(cpid), 'copy.json');
    const record = JSON.parse(await readFile(file, 'utf8')) as { process?: { pid: number } };
    return record.process?.pid;
  });
}

async function uidOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
}

const running = (cpid: number, node: string) =>
  until(`${cpid} to run on ${node}`, async () => {
    const r = await admin.get(cpid);
    return r.state === 'running' && r.home === node ? r : undefined;
  });

const failed = (cpid: number) =>
  until(`${cpid} to fail`, async () => {
    const r = await admin.get(cpid);
    return r.state === 'failed' ? r : undefined;
  });

t.test('clusteradm run: as nobody by default, as the user --user names', async (t) => {
  const home = join(cluster.root, 'admin-home');
  const { mkdir } = await import('node:fs/promises');
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
  const run = async (...words: string[]) => {
    let stdout = '';
    const code = await runClusteradm(
      ['run', '--home', home, '--node', 'sb', '-o', 'json', ...words],
      {
        stdout: (text) => {
          stdout += text;
        },
        stderr: () => {},
        env: {},
        userHome: tmpdir(),
        cwd: cluster.root,
        now: Date.now,
        hostname,
      },
    );
    t.equal(code, 0);
    return (JSON.parse(stdout) as { cpid: number }).cpid;
  };
  const cpid = await run('--', '/bin/sleep', '300');
  await running(cpid, 'sb');
  t.equal(await uidOf(await copyPid('sb', cpid)), 65534, '/proc/<pid>/status: Uid 65534 (nobody)');
  await admin.kill(cpid);
  // --user: that user's uid (daemon is uid 1 on Debian).
  const asDaemon = await run('--user', 'daemon', '--', '/bin/sleep', '300');
  t.equal((await admin.get(asDaemon)).user, 'daemon', 'the record names the user');
  await running(asDaemon, 'sb');
  t.equal(await uidOf(await copyPid('sb', asDaemon)), 1, 'run --user daemon: Uid 1');
  await admin.kill(asDaemon);
});

t.test('root: only where the node allows it, and only for an admin', async (t) => {
  const refused = await admin.create({
    command: '/bin/sleep',
    args: ['300'],
    node: 'sb',
    user: 'root',
  });
  const r1 = await failed(refused.cpid);
  t.match(r1.failure, /^ROOT_NOT_ALLOWED: /, 'sb does not allow root: a recorded failure');
  t.match(cluster.agentLog(1), 'ROOT_NOT_ALLOWED', "sb's log names the refusal");

  const allowed = await admin.create({
    command: '/bin/sleep',
    args: ['300'],
    node: 'sa',
    user: 'root',
  });
  await running(allowed.cpid, 'sa');
  t.equal(
    await uidOf(await copyPid('sa', allowed.cpid)),
    0,
    "an admin's process on sa runs as root",
  );
  await admin.kill(allowed.cpid);

  const nodeHome = join(cluster.root, 'sa');
  const asNode = createClient({
    endpoints: cluster.cd.urls,
    ca: await readFile(join(nodeHome, 'ca.crt'), 'utf8'),
    cert: await readFile(join(nodeHome, 'node.crt'), 'utf8'),
    key: await readFile(join(nodeHome, 'node.key'), 'utf8'),
  });
  t.teardown(() => asNode.close());
  const byNode = await asNode.processes.create({
    command: '/bin/sleep',
    args: ['300'],
    node: 'sa',
    user: 'root',
  });
  t.equal(byNode.createdBy, 'node', 'the record names the role of its creator');
  const r3 = await failed(byNode.cpid);
  t.match(
    r3.failure,
    /^ROOT_NOT_ALLOWED: .*not created by an admin/,
    "a node's process never runs as root",
  );
  t.match(cluster.agentLog(0), 'ROOT_NOT_ALLOWED', "sa's log names the refusal");
});

t.test(
  'a wall-clock step of -60 s on a frozen source during a migration: no overlap',
  async (t) => {
    const p = await admin.create({
      command: process.execPath,
      args: [COUNTER_FIXTURE, '--unit', '50000', '--sleep', '100'],
      migratable: 'checkpoint',
      node: 'sa',
    });
    await running(p.cpid, 'sa');
    await copyPid('sa', p.cpid);
    // sa's clock steps back a minute; its agent freezes (partitioned, stopped): only the
    // fence shim's lease stands between its copy and the one sb is about to start.
    await writeFile(offsetFile, String(-60_000));
    await new Promise((r) => setTimeout(r, 300)); // the shims re-read the offset every 25 ms
    cluster.signal(0, 'SIGSTOP');
    const stoppedAt = Date.now();
    let resumed = false;
    const resume = () => {
      if (!resumed) cluster.signal(0, 'SIGCONT');
      resumed = true;
    };
    t.teardown(resume);
    await admin.migrate(p.cpid, 'sb');
    await running(p.cpid, 'sb');
    // Keep the source frozen past its lease and the fence margin, as the exactly-once suite does.
    await new Promise((r) =>
      setTimeout(r, Math.max(0, stoppedAt + (GRACE + MARGIN + 1.5) * 1000 - Date.now())),
    );
    resume();
    await until(
      'the copy on sa to have ended',
      async () => {
        const text = await readFile(cluster.intervalLog, 'utf8');
        const lines = text
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l));
        const mine = lines.filter((l) => l.cpid === p.cpid && l.node === 'sa');
        return mine.some((l) => l.event === 'end') || undefined;
      },
      60_000,
    );
    const text = await readFile(cluster.intervalLog, 'utf8');
    t.same(overlaps(text), [], 'no two copies of a cluster PID ever ran at once');
    const ends = text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .filter((l) => l.cpid === p.cpid && l.node === 'sa' && l.event === 'end');
    t.ok(ends[0]?.fenced, "sa's shim fenced its copy at the lease deadline, clock step or not");
    await writeFile(offsetFile, '0');
    await admin.kill(p.cpid);
  },
);
