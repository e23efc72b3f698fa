/**
 * The agent's device space over mutual TLS, configured as a user would (an
 * agent.json file with relative paths): two nodes whose page servers speak
 * TLS; B's declared image, exported rw, is written with dd through A's mount
 * (remotedev-fuse with A's node certificate) and read back with cmp through
 * B's own mount; the tree file marks both owners `tls`.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, ftruncateSync, openSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import t from 'tap';
import { type Agent, startAgent } from '../../services/agent/agent.ts';
import { loadAgentConfig } from '../../services/agent/config.ts';
import { isMounted, unmount } from '../../services/agent/remotedev-process.ts';
import { createClient } from '../../services/client/index.ts';
import { startClusterdReplicas } from '../harness/clusterd.ts';
import { joinNode } from '../harness/node.ts';
import { until } from '../harness/until.ts';
import { remotedevBinaries } from './remotedev-fixtures.ts';

const bins = remotedevBinaries();
const run = promisify(execFile);
const MiB = 1024 * 1024;
const SIZE = 16 * MiB;

async function sh(cmd: string, args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    const r = await run(cmd, args, { timeout: 60_000 });
    return { code: 0, stderr: r.stderr.toString() };
  } catch (e) {
    const err = e as { code?: number | string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : 1, stderr: String(err.stderr) };
  }
}

const exists = (path: string): boolean => {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
};

const cd = await startClusterdReplicas({ count: 1, store: { backend: 'embedded' } });
t.teardown(() => cd.destroy());
const dir = await mkdtemp(join(tmpdir(), `amalgam-devtls-${process.pid}-`));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const admin = createClient({ endpoints: cd.urls, ...cd.admin });
t.teardown(() => admin.close());

async function startNode(name: string, declared: { name: string; path: string }[]): Promise<Agent> {
  const home = join(dir, name);
  await mkdir(home, { recursive: true });
  await joinNode(cd, name, { home, contributedBytes: 8 * MiB });
  await writeFile(
    join(home, 'agent.json'),
    JSON.stringify({
      server: cd.urls,
      name,
      certFile: 'node.crt',
      keyFile: 'node.key',
      caFile: 'ca.crt',
      heartbeatSeconds: 1,
      stateDir: 'state',
      pageserver: { binary: bins.pageserver },
      devices: { block: false, declared },
      remotedev: { mount: 'remotedev', binary: bins.fuse },
    }),
  );
  const config = await loadAgentConfig(join(home, 'agent.json'));
  return startAgent({
    config,
    logger: pino({ level: process.env.AGENT_LOG ?? 'silent' }),
    healthMs: 500,
    resyncMs: 3000,
  });
}

const imageB = join(dir, 'tls-b', 'disk0.img');
await mkdir(join(dir, 'tls-b'), { recursive: true });
const fd = openSync(imageB, 'w');
ftruncateSync(fd, SIZE);
closeSync(fd);

// Whatever happens, no mount of ours outlives the test.
t.teardown(() => {
  for (const name of ['tls-a', 'tls-b']) unmount(join(dir, name, 'remotedev'));
});
const agents = await Promise.all([
  startNode('tls-a', []),
  startNode('tls-b', [{ name: 'disk0', path: 'disk0.img' }]),
]);
t.teardown(() => Promise.all(agents.map((a) => a.close())));
const [agentA, agentB] = agents as [Agent, Agent];

t.test('dd through A, cmp through B, every hop on mutual TLS', async (t) => {
  await until(
    'B to report disk0',
    async () => (await admin.devices.list('tls-b')).some((d) => d.name === 'disk0') || undefined,
  );
  t.equal(
    (await admin.devices.get('tls-b', 'disk0')).path,
    imageB,
    'declared relative to agent.json',
  );
  await admin.devices.setExport('tls-b', 'disk0', 'rw');
  const mntA = agentA.devices().mount?.dir as string;
  const mntB = agentB.devices().mount?.dir as string;
  t.equal(mntA, join(dir, 'tls-a', 'remotedev'), 'the mount is relative to agent.json');
  t.ok(isMounted(mntA) && isMounted(mntB), 'both mounted');
  const onA = join(mntA, 'tls-b', 'disk0');
  const onB = join(mntB, 'tls-b', 'disk0');
  await until('tls-b/disk0 on both mounts', () => (exists(onA) && exists(onB)) || undefined);
  t.match(readFileSync(agentA.devices().treeFile, 'utf8'), / rw 127\.0\.0\.1:\d+ tls\n/);

  const data = join(dir, 'data');
  await writeFile(data, randomBytes(SIZE));
  const w = await sh('dd', [
    `if=${data}`,
    `of=${onA}`,
    'bs=256k',
    'conv=notrunc,fsync',
    'status=none',
  ]);
  t.equal(w.code, 0, `dd through A: ${w.stderr}`);
  const c = await sh('cmp', [data, onB]);
  t.equal(c.code, 0, `cmp through B: ${c.stderr}`);
  const img = await sh('cmp', [data, imageB]);
  t.equal(img.code, 0, `on B's image: ${img.stderr}`);
});
