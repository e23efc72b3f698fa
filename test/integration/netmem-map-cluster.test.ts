/**
 * netmem_map on a real cluster: clusterd and three nodes, each with its agent
 * running its page server on mutual TLS (the agents' default from now on), the
 * route table built from the layout (GET /v1/memory/layout) and the nodes'
 * published page servers; every C program uses its node's own certificate.
 *
 * - Node A writes a 256 MiB array into a segment pinned on node B; a plain C
 *   program run by netmem-run "on node C" (with node C's route table) maps it
 *   and prints the same checksum as the same program over a local copy.
 * - Three processes, one per node, each do 10,000 increments of one counter
 *   under netmem_lock/netmem_unlock: exactly 30,000. The lock word is the one
 *   NetworkLock (TypeScript) uses: a lease it left behind is taken over.
 * - Node B's page server killed under a mapped reader: SIGBUS and a log line
 *   within the timeout, never a hang. Without TLS credentials: SIGBUS too.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { SegmentView } from '../../services/api/contracts.ts';
import type { AmalgamClient } from '../../services/client/index.ts';
import { NetworkLock } from '../../services/client/network-lock.ts';
import { NetworkMemory } from '../../services/client/network-memory.ts';
import { startClusterdReplicas } from '../harness/clusterd.ts';
import { pageServerBinary } from '../harness/native.ts';
import { type AgentNode, joinNodeWithAgent } from '../harness/node.ts';
import { until } from '../harness/until.ts';
import {
  buildNetmem,
  killedAtTeardown,
  MAP_TEST,
  NETMEM_RUN,
  routeTable,
  runProgram,
  SUM_ARRAY,
  segmentMapSpec,
} from './netmem-map-fixtures.ts';

const MiB = 1024 * 1024;
const NAMES = ['nmm-a', 'nmm-b', 'nmm-c'];
const TIMEOUT_MS = 2000;
const hex = (n: number) => `0x${n.toString(16)}`;

buildNetmem();
const BINARY = pageServerBinary();

const children = killedAtTeardown(t);

const cd = await startClusterdReplicas({ count: 1, store: { backend: 'embedded' } });
t.teardown(() => cd.destroy());
const dir = await mkdtemp(join(tmpdir(), 'amalgam-netmem-map-cluster-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

/**
 * Page servers on mutual TLS: `tls: true` is what this branch's agent config
 * asks for; agents that default to TLS ignore the key (hence the loose type).
 */
const TLS_PAGESERVER = { tls: true } as object;

function startNode(name: string): Promise<AgentNode> {
  const contributed = name === 'nmm-b' ? 512 * MiB : 32 * MiB;
  return joinNodeWithAgent(cd, name, {
    home: join(dir, name),
    contributedBytes: contributed,
    memoryBytes: 4 * contributed,
    pageserver: { binary: BINARY, ...TLS_PAGESERVER },
  });
}

/** Network memory as this node sees it (its certificate for TLS page servers). */
const openMemory = (node: AgentNode) => NetworkMemory.open({ client: node.client, tls: node.tls });

/** What netmem needs in the environment to run as this node. */
const netmemEnv = (node: AgentNode, routesFile: string, extra: NodeJS.ProcessEnv = {}) => ({
  NETMEM_ROUTES_FILE: routesFile,
  NETMEM_TLS_CERT: node.files.certFile,
  NETMEM_TLS_KEY: node.files.keyFile,
  NETMEM_TLS_CA: node.files.caFile,
  ...extra,
});

const nodes = await Promise.all(NAMES.map(startNode));
t.teardown(async () => {
  await Promise.all(nodes.map(async (n) => Promise.all([n.agent.close(), n.client.close()])));
});
const [nodeA, nodeB, nodeC] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];

await until('all three page servers published, on mutual TLS', async () => {
  const list = (await nodeC.client.nodes.list()).filter((n) => NAMES.includes(n.name));
  return list.length === 3 && list.every((n) => n.pageserver?.tls === true) ? true : undefined;
});

/** Node C's view of the layout, as the file netmem-run reads. */
async function routesFileOf(client: AmalgamClient, name: string): Promise<string> {
  const file = join(dir, `${name}.routes`);
  await writeFile(file, await routeTable(client));
  return file;
}

/** The single contiguous global range of a segment (what one mapping needs). */
function contiguous(segment: SegmentView): { start: number; size: number } | undefined {
  const [first, ...rest] = segment.extents;
  if (!first) return undefined;
  let end = first.start + first.size;
  for (const e of rest) {
    if (e.start !== end) return undefined;
    end += e.size;
  }
  return { start: first.start, size: end - first.start };
}

t.test(
  'node A writes 256 MiB on node B; a C program on node C sums it like a local copy',
  async (t) => {
    const size = 256 * MiB;
    const segment = await nodeA.client.memory.allocateSegment({
      size,
      placement: { mode: 'pinned', node: 'nmm-b' },
      id: 'netmem-map-256',
    });
    t.same([...new Set(segment.extents.map((e) => e.node))], ['nmm-b'], 'all of it on node B');
    const range = contiguous(segment);
    t.ok(range, 'one contiguous global range');
    if (!range) return;

    const data = Buffer.alloc(size);
    let x = 2026;
    for (let i = 0; i < size; i += 4) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      data.writeUInt32LE(x >>> 0, i);
    }
    const fromA = await openMemory(nodeA);
    t.teardown(() => fromA.close());
    await fromA.writeSegment(segment, 0, data);
    const copy = join(dir, 'local-copy.bin');
    await writeFile(copy, data);

    const local = await runProgram(SUM_ARRAY, [copy], { children });
    t.equal(local.code, 0, local.stderr);
    const routes = await routesFileOf(nodeC.client, 'nmm-c');
    const c = nodeC.files;
    const remote = await runProgram(
      NETMEM_RUN,
      [
        '--routes-file',
        routes,
        '--tls-cert',
        c.certFile,
        '--tls-key',
        c.keyFile,
        '--tls-ca',
        c.caFile,
        '--map',
        `${hex(range.start)}:${range.size}`,
        '--',
        SUM_ARRAY,
      ],
      { children, guardMs: 240_000 },
    );
    t.equal(remote.code, 0, `netmem-run exit 0 (stderr: ${remote.stderr})`);
    t.match(remote.lines[0], /^sum [0-9a-f]{16} hash [0-9a-f]{16} bytes 268435456$/);
    t.equal(remote.lines[0], local.lines[0], 'the same checksum as the local copy');

    const plain = await runProgram(
      NETMEM_RUN,
      ['--routes-file', routes, '--map', `${hex(range.start)}:${range.size}`, '--', SUM_ARRAY],
      { children, env: { NETMEM_TIMEOUT_MS: String(TIMEOUT_MS) } },
    );
    t.equal(plain.signal, 'SIGBUS', 'without TLS credentials: SIGBUS, not a hang');
    t.match(plain.stderr, /could not be fetched from .*: E[A-Z]+/, 'and a log line');
  },
);

t.test(
  'a segment spread over the nodes, mapped extent by extent, sums like a local copy',
  async (t) => {
    const size = 24 * MiB;
    const segment = await nodeA.client.memory.allocateSegment({
      size,
      placement: { mode: 'spread' },
      id: 'netmem-map-spread',
    });
    t.ok(new Set(segment.extents.map((e) => e.node)).size >= 2, 'extents on several nodes');
    const data = Buffer.alloc(size);
    let x = 99;
    for (let i = 0; i < size; i += 4) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      data.writeUInt32LE(x >>> 0, i);
    }
    const fromB = await openMemory(nodeB);
    t.teardown(() => fromB.close());
    await fromB.writeSegment(segment, 0, data);
    const copy = join(dir, 'spread-copy.bin');
    await writeFile(copy, data);
    const local = await runProgram(SUM_ARRAY, [copy], { children });
    const routes = await routesFileOf(nodeC.client, 'nmm-c-spread');
    const remote = await runProgram(
      NETMEM_RUN,
      ['--map', segmentMapSpec(segment), '--', SUM_ARRAY],
      { children, env: netmemEnv(nodeC, routes) },
    );
    t.equal(remote.code, 0, `netmem-run exit 0 (stderr: ${remote.stderr})`);
    t.equal(remote.lines[0], local.lines[0], 'the same checksum as the local copy');
  },
);

t.test('3 nodes x 10,000 increments under netmem_lock end at exactly 30,000', async (t) => {
  const segment = await nodeA.client.memory.allocateSegment({
    size: 64 * 1024,
    placement: { mode: 'pinned', node: 'nmm-c' },
    id: 'netmem-map-counter',
  });
  const page = (segment.extents[0] as { start: number }).start;
  const memory = await openMemory(nodeA);
  t.teardown(() => memory.close());
  await memory.write(page, Buffer.alloc(4096));

  // A NetworkLock holder that "crashed" (never releases) with a 1 s lease:
  // netmem_lock reads the same word encoding and takes it over once expired.
  const crashed = new NetworkLock(memory, page);
  await crashed.acquire({ ttlSeconds: 1 });

  const runs = await Promise.all(
    nodes.map(async (node, i) => {
      const routes = await routesFileOf(node.client, NAMES[i] as string);
      return runProgram(MAP_TEST, ['counter', hex(page), '10000'], {
        env: netmemEnv(node, routes, { NETMEM_TIMEOUT_MS: String(TIMEOUT_MS) }),
        children,
        guardMs: 240_000,
      });
    }),
  );
  for (const r of runs) t.equal(r.code, 0, `counter exit 0 (stderr: ${r.stderr})`);
  t.equal((await memory.read(page + 64, 8)).readBigUInt64LE(0), 30_000n, 'exactly 30,000');
  t.equal(await crashed.peek(), null, 'the lock word is free at the end');
  // and NetworkLock takes the word netmem_lock released
  const after = new NetworkLock(memory, page);
  await after.acquire({ ttlSeconds: 5, timeoutMs: 0 });
  await after.release();
});

t.test('netmem_lock and NetworkLock exclude each other on the same word', async (t) => {
  const segment = await nodeA.client.memory.getSegment('netmem-map-counter');
  const page = (segment.extents[0] as { start: number }).start + 8192;
  const memory = await openMemory(nodeA);
  t.teardown(() => memory.close());
  await memory.write(page, Buffer.alloc(8));
  const routes = await routesFileOf(nodeC.client, 'nmm-c-locks');
  const env = netmemEnv(nodeC, routes, { NETMEM_LOCK_TIMEOUT_MS: '1000' });

  // A live NetworkLock holder: netmem_lock gives up after its timeout.
  const ts = new NetworkLock(memory, page);
  await ts.acquire({ ttlSeconds: 60 });
  const blocked = await runProgram(MAP_TEST, ['hold-lock', hex(page)], { env, children });
  t.ok(blocked.lines.includes('lock error ETIMEDOUT'), blocked.lines.join('; '));
  await ts.release();

  // A C holder: NetworkLock sees it (LOCK_TIMEOUT) until it unlocks.
  let holder = '';
  const held = await runProgram(MAP_TEST, ['hold-lock', hex(page)], {
    env,
    children,
    onReady: async () => {
      const other = new NetworkLock(memory, page);
      await other.acquire({ ttlSeconds: 5, timeoutMs: 0 }).then(
        () => {
          holder = 'acquired';
        },
        (err: { code?: string }) => {
          holder = err.code ?? String(err);
        },
      );
    },
  });
  t.equal(held.code, 0, held.stderr);
  t.ok(held.lines.includes('locked') && held.lines.includes('unlocked'), held.lines.join('; '));
  t.equal(holder, 'LOCK_TIMEOUT', 'NetworkLock cannot take a word netmem_lock holds');
  const free = new NetworkLock(memory, page);
  await free.acquire({ ttlSeconds: 5, timeoutMs: 0 });
  await free.release();
});

t.test("node B's page server killed under a mapped reader: SIGBUS, never a hang", async (t) => {
  const segment = await nodeA.client.memory.getSegment('netmem-map-256');
  const range = contiguous(segment) as { start: number; size: number };
  const routes = await routesFileOf(nodeC.client, 'nmm-c-kill');
  const victim = nodeB.agent.pageServer();
  t.ok(victim, 'node B runs a page server');
  const r = await runProgram(MAP_TEST, ['wait-scan', hex(range.start), String(range.size)], {
    env: netmemEnv(nodeC, routes, { NETMEM_TIMEOUT_MS: String(TIMEOUT_MS) }),
    children,
    guardMs: 60_000,
    onReady: async () => {
      process.kill(victim?.pid as number, 'SIGKILL');
      await until('the page server is gone', () => {
        try {
          process.kill(victim?.pid as number, 0);
          return undefined;
        } catch {
          return true;
        }
      });
    },
  });
  t.equal(r.signal, 'SIGBUS', `killed by SIGBUS (code ${r.code}, stderr: ${r.stderr})`);
  t.match(
    r.stderr,
    new RegExp(`could not be fetched from ${victim?.host}:${victim?.port}: E[A-Z]+ .*SIGBUS`),
    'a log line names the owner and the error',
  );
  t.ok(r.msAfterGo < TIMEOUT_MS + 2000, `within the timeout (${r.msAfterGo} ms)`);
});
