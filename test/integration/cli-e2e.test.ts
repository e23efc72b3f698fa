/**
 * clusteradm end to end on the embedded store: `init` (the binary) starts a
 * real clusterd, a token is made, two machines (two node homes, each join run
 * by the binary) join, the nodes get disjoint ranges, a segment is allocated
 * and freed, a node is removed. The admin commands run in process (the same
 * code, without a process start each). The clusterd that init started is
 * killed at the end, whatever happened.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type {
  MemoryLayoutView,
  NodeView,
  SegmentView,
} from '../../services/controlplane/service/contracts.ts';
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
  const pid = Number.parseInt(
    await readFile(join(home, 'clusterd.pid'), 'utf8').catch(() => ''),
    10,
  );
  if (Number.isInteger(pid) && pid > 0) await stopProcess(pid);
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

  for (const [name, contribute] of [
    ['node-a', '1Gi'],
    ['node-b', '2Gi'],
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
      '--no-agent',
    ]);
    t.equal(joined.code, 0, `join ${name}: ${joined.stderr}`);
  }

  const nodes = json<{ items: NodeView[] }>((await admin(['nodes', '-o', 'json'])).stdout).items;
  t.same(nodes.map((n) => n.name).sort(), ['node-a', 'node-b']);
  // No agent runs here: a node is Joining until its grace period passes, then NotReady.
  for (const node of nodes) t.ok(['Joining', 'NotReady'].includes(node.state), node.state);
  const [a, b] = [...nodes].sort((x, y) => x.range.start - y.range.start) as [NodeView, NodeView];
  t.ok(a.range.start + a.range.size <= b.range.start, 'the ranges are disjoint');
  t.equal(nodes.find((n) => n.name === 'node-a')?.range.size, 1024 * MIB);

  const table = await admin(['nodes']);
  t.match(table.stdout, /^NAME\s+STATE\s+ROLES\s+CONTRIBUTED\s+RANGE/);
  t.match(table.stdout, /node-b\s+(Joining|Ready)\s+/);

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
