/**
 * clusteradm end to end on the embedded store: `init` (the binary) starts a
 * real clusterd, a token is made, two machines (two node homes, each join run
 * by the binary) join — node-a as a user would, so join starts its
 * clusteragent and page server (mutual TLS); node-b with --no-agent — the
 * nodes get disjoint ranges, bytes go through node-a's page server, a segment
 * is allocated and freed, a node is removed. The admin commands run in
 * process (the same code, without a process start each). The clusterd that
 * init started and the agent that join started are stopped at the end,
 * whatever happened.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { MemoryLayoutView, NodeView, SegmentView } from '../../services/api/contracts.ts';
import { freePort, runCli, runCliInProcess } from './cli-fixtures.ts';

const MIB = 1024 * 1024;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function stopProcess(pid: number): Promise<void> {
  if (!alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

const root = await mkdtemp(join(tmpdir(), 'amalgam-cli-e2e-'));
const home = join(root, 'admin');
t.teardown(async () => {
  // The agent first (it stops its page server), then clusterd.
  for (const pidFile of [join(root, 'node-a', 'agent.pid'), join(home, 'clusterd.pid')]) {
    const pid = Number.parseInt(await readFile(pidFile, 'utf8').catch(() => ''), 10);
    if (Number.isInteger(pid) && pid > 0) await stopProcess(pid);
  }
  await rm(root, { recursive: true, force: true });
});

const admin = (args: string[]) => runCliInProcess([...args, '--home', home]);
const json = <T>(text: string): T => JSON.parse(text) as T;

const port = await freePort();
const init = await runCli([
  'init',
  '--home',
  home,
  '--name',
  'e2e',
  '--listen',
  `127.0.0.1:${port}`,
  '-o',
  'json',
]);
t.equal(init.code, 0, `init: ${init.stderr}`);
const cluster = json<{ server: string; caCertHash: string; token: string; joinCommand: string }>(
  init.stdout,
);
t.equal(cluster.server, `https://127.0.0.1:${port}`);
t.match(cluster.caCertHash, /^sha256:[0-9a-f]{64}$/);
t.match(cluster.joinCommand, `--ca-cert-hash ${cluster.caCertHash}`);

t.test('a second init into the same home is refused', async (t) => {
  const again = await runCliInProcess(['init', '--home', home, '--no-start']);
  t.equal(again.code, 1);
  t.match(again.stderr, /^error: HOME_EXISTS: /m);
});

t.test('tokens, joins, memory and removal', async (t) => {
  const created = await admin(['token', 'create', '--description', 'e2e', '-o', 'json']);
  t.equal(created.code, 0, created.stderr);
  const { token, id } = json<{ token: string; id: string }>(created.stdout);

  const listed = await admin(['token', 'list', '-o', 'json']);
  t.ok(json<{ items: { id: string }[] }>(listed.stdout).items.some((x) => x.id === id));

  let agentPid = 0;
  for (const [name, contribute, agent] of [
    ['node-a', '1Gi', []],
    ['node-b', '2Gi', ['--no-agent']],
  ] as const) {
    const joined = await runCli([
      'join',
      cluster.server,
      '--token',
      token,
      '--ca-cert-hash',
      cluster.caCertHash,
      '--name',
      name,
      '--home',
      join(root, name),
      '--contribute',
      contribute,
      ...agent,
      '-o',
      'json',
    ]);
    t.equal(joined.code, 0, `join ${name}: ${joined.stderr}`);
    const out = json<{ node: NodeView; agent: { pid: number; log: string } | null }>(joined.stdout);
    if (agent.length === 0) {
      t.equal(out.node.state, 'Ready', 'join returns once its agent made the node Ready');
      t.equal(out.node.pageserver?.tls, true, 'with a page server on mutual TLS (the default)');
      t.ok(out.agent && alive(out.agent.pid), 'the agent keeps running after join returns');
      agentPid = out.agent?.pid ?? 0;
    } else {
      t.equal(out.agent, null, '--no-agent starts none');
      t.match(joined.stderr, /--no-agent.*clusteragent --config/);
    }
  }

  const nodes = json<{ items: NodeView[] }>((await admin(['nodes', '-o', 'json'])).stdout).items;
  t.same(nodes.map((n) => n.name).sort(), ['node-a', 'node-b']);
  t.equal(nodes.find((n) => n.name === 'node-a')?.state, 'Ready');
  // No agent runs for node-b: it is Joining until its grace period passes, then NotReady.
  const stateB = nodes.find((n) => n.name === 'node-b')?.state as string;
  t.ok(['Joining', 'NotReady'].includes(stateB), stateB);

  // The admin reaches node-a's bytes through its TLS page server.
  const pinned = json<SegmentView>(
    (await admin(['mem', 'alloc', '4Mi', '--pinned', 'node-a', '-o', 'json'])).stdout,
  );
  const wrote = await admin(['mem', 'write', `${pinned.id}:100`, '--data', 'through join']);
  t.equal(wrote.code, 0, wrote.stderr);
  const read = await admin(['mem', 'read', `${pinned.id}:100`, '12']);
  t.equal(read.stdout, 'through join');
  t.equal((await admin(['mem', 'free', pinned.id])).code, 0);

  // Joining again from the same home replaces the running agent (new credentials).
  const rejoined = await runCli([
    'join',
    cluster.server,
    '--token',
    token,
    '--ca-cert-hash',
    cluster.caCertHash,
    '--name',
    'node-a',
    '--home',
    join(root, 'node-a'),
    '-o',
    'json',
  ]);
  t.equal(rejoined.code, 0, rejoined.stderr);
  const again = json<{ rejoined: boolean; agent: { pid: number } }>(rejoined.stdout);
  t.ok(again.rejoined);
  t.not(again.agent.pid, agentPid, 'a new agent');
  t.notOk(alive(agentPid), 'the old agent was stopped');
  t.match(rejoined.stderr, new RegExp(`stopped the agent that ran from .* \\(pid ${agentPid}\\)`));
  const [a, b] = [...nodes].sort((x, y) => x.range.start - y.range.start) as [NodeView, NodeView];
  t.ok(a.range.start + a.range.size <= b.range.start, 'the ranges are disjoint');
  t.equal(nodes.find((n) => n.name === 'node-a')?.range.size, 1024 * MIB);

  const table = await admin(['nodes']);
  t.match(table.stdout, /^NAME\s+STATE\s+ROLES\s+CONTRIBUTED\s+RANGE/);
  // No agent for node-b: Joining, or NotReady once its grace passed (a slow run).
  t.match(table.stdout, /node-b\s+(Joining|NotReady)\s+/);

  const alloc = await admin(['mem', 'alloc', '64Mi', '-o', 'json']);
  t.equal(alloc.code, 0, alloc.stderr);
  const segment = json<SegmentView>(alloc.stdout);
  t.equal(segment.size, 64 * MIB);
  t.equal(
    segment.extents.reduce((sum, e) => sum + e.size, 0),
    64 * MIB,
  );

  const layout = json<MemoryLayoutView>((await admin(['mem', 'layout', '-o', 'json'])).stdout);
  t.equal(layout.layout.ranges.length, 2);
  t.equal(layout.segments, 1);

  const missing = await admin(['node', 'describe', 'no-such-node']);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /^error: NODE_NOT_FOUND: /m);

  const freed = await admin(['mem', 'free', segment.id]);
  t.equal(freed.code, 0, freed.stderr);

  const removed = await admin(['node', 'remove', 'node-b']);
  t.equal(removed.code, 0, removed.stderr);
  const after = json<{ items: NodeView[] }>((await admin(['nodes', '-o', 'json'])).stdout).items;
  t.notOk(
    after.some((n) => n.name === 'node-b' && n.state !== 'Removed'),
    'node-b is gone or Removed',
  );
  const layoutAfter = json<MemoryLayoutView>((await admin(['mem', 'layout', '-o', 'json'])).stdout);
  t.same(
    layoutAfter.layout.ranges.map((r) => r.node),
    ['node-a'],
    "node-b's range was freed",
  );
});
