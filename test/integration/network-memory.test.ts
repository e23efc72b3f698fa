import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { NodeView, SegmentView } from '../../services/api/contracts.ts';
import { runClusteradm } from '../../services/cli/main.ts';
import { createClient } from '../../services/client/index.ts';
import { NetworkLock } from '../../services/client/network-lock.ts';
import { NetworkMemory } from '../../services/client/network-memory.ts';
import { startClusterdReplicas } from '../harness/clusterd.ts';
import { pageServerBinary } from '../harness/native.ts';
import { type AgentNode, joinNodeWithAgent } from '../harness/node.ts';
import { until } from '../harness/until.ts';

const BINARY = pageServerBinary();

const MiB = 1024 * 1024;
const NAMES = ['nm-a', 'nm-b', 'nm-c'];

/** Deterministic bytes: a xorshift stream from a seed. */
function pattern(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i + 4 <= length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, i);
  }
  return out;
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

const cd = await startClusterdReplicas({ count: 1, store: { backend: 'embedded' }, grpc: true });
t.teardown(() => cd.destroy());
const dir = await mkdtemp(join(tmpdir(), 'amalgam-netmem-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

const admin = createClient({
  endpoints: cd.urls,
  ca: cd.admin.ca,
  cert: cd.admin.cert,
  key: cd.admin.key,
});
t.teardown(() => admin.close());

/** Joins a node and starts its agent (page server on mutual TLS, the default). */
function startNode(name: string): Promise<AgentNode> {
  return joinNodeWithAgent(cd, name, {
    home: join(dir, name),
    contributedBytes: 32 * MiB,
    memoryBytes: 256 * MiB,
    pageserver: { binary: BINARY },
  });
}

/** Network memory as this node sees it, over mutual TLS with its certificate. */
const openMemory = (node: AgentNode): Promise<NetworkMemory> =>
  NetworkMemory.open({ client: node.client, tls: node.tls });

const nodes = await Promise.all(NAMES.map(startNode));
t.teardown(async () => {
  await Promise.all(nodes.map(async (n) => Promise.all([n.agent.close(), n.client.close()])));
});

const published: NodeView[] = await until('all three page servers published', async () => {
  const list = (await admin.nodes.list()).filter((n) => NAMES.includes(n.name));
  return list.length === 3 && list.every((n) => n.pageserver !== null) ? list : undefined;
});

const [nodeA, nodeB, nodeC] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];

t.test('each node publishes the page server its agent runs', async (t) => {
  for (const [i, node] of nodes.entries()) {
    const view = published.find((n) => n.name === NAMES[i]) as NodeView;
    const ps = node.agent.pageServer();
    t.ok(ps, `${NAMES[i]} runs a page server`);
    t.same(view.pageserver, { address: `${ps?.host}:${ps?.port}`, tls: true });
  }
});

let segment: SegmentView;

t.test('the gRPC transport shows the same page servers', async (t) => {
  const grpc = createClient({
    transport: 'grpc',
    endpoints: cd.grpcUrls,
    ca: cd.admin.ca,
    cert: cd.admin.cert,
    key: cd.admin.key,
  });
  t.teardown(() => grpc.close());
  const byName = (list: NodeView[]) =>
    Object.fromEntries(
      list.filter((n) => NAMES.includes(n.name)).map((n) => [n.name, n.pageserver]),
    );
  t.same(byName(await grpc.nodes.list()), byName(await admin.nodes.list()));
});

t.test('64 MiB written from node A read back from node C, byte for byte', async (t) => {
  segment = await nodeA.client.memory.allocateSegment({ size: 64 * MiB, id: 'netmem-64' });
  t.same(
    [...new Set(segment.extents.map((e) => e.node))].sort(),
    [...NAMES].sort(),
    'the segment has extents on all three nodes',
  );
  const data = pattern(64 * MiB, 42);
  const fromA = await openMemory(nodeA);
  const fromC = await openMemory(nodeC);
  t.teardown(() => Promise.all([fromA.close(), fromC.close()]));
  await fromA.writeSegment(segment, 0, data);
  const back = await fromC.readSegment(segment, 0, 64 * MiB);
  t.equal(sha256(back), sha256(data), 'the checksums match');

  // Extent by extent through global addresses too.
  let offset = 0;
  for (const extent of segment.extents) {
    const slice = await fromC.read(extent.start, Math.min(extent.size, 4096));
    t.ok(slice.equals(data.subarray(offset, offset + slice.length)), `extent at ${extent.start}`);
    offset += extent.size;
  }
});

t.test('reads and writes that cross a range boundary round-trip', async (t) => {
  const layout = (await admin.memory.layout()).layout;
  const ranges = layout.ranges.filter((r) => NAMES.includes(r.node));
  const fromB = await openMemory(nodeB);
  const fromC = await openMemory(nodeC);
  t.teardown(() => Promise.all([fromB.close(), fromC.close()]));
  let crossed = 0;
  for (let i = 0; i + 1 < ranges.length; i++) {
    const left = ranges[i] as { start: number; size: number; node: string };
    const right = ranges[i + 1] as { start: number; node: string };
    if (left.start + left.size !== right.start) continue; // a gap: no byte crosses it
    const at = right.start - 3000;
    const bytes = pattern(7001, 7 + i);
    await fromB.write(at, bytes);
    t.ok((await fromC.read(at, bytes.length)).equals(bytes), `${left.node} -> ${right.node}`);
    crossed++;
  }
  t.ok(crossed >= 1, 'at least one boundary between adjacent ranges was crossed');

  // A segment offset spanning two extents on different nodes.
  const first = segment.extents[0] as { size: number };
  const bytes = pattern(10_000, 99);
  await fromB.writeSegment(segment, first.size - 5000, bytes);
  t.ok((await fromC.readSegment(segment, first.size - 5000, bytes.length)).equals(bytes));
});

t.test('3 concurrent clients x 500 CAS64 and FETCH_ADD64 end at exactly 1,500', async (t) => {
  const counter = (segment.extents[1] as { start: number }).start + 64;
  const clients = await Promise.all(nodes.map(openMemory));
  t.teardown(() => Promise.all(clients.map((c) => c.close())));
  await clients[0]?.write(counter, Buffer.alloc(16));

  await Promise.all(
    clients.map(async (memory) => {
      for (let i = 0; i < 500; i++) await memory.fetchAdd64(counter, 1n);
    }),
  );
  t.equal((await clients[1]?.read(counter, 8))?.readBigUInt64LE(0), 1500n, 'fetchAdd64');

  const word = counter + 8;
  await Promise.all(
    clients.map(async (memory) => {
      for (let i = 0; i < 500; ) {
        const old = (await memory.read(word, 8)).readBigUInt64LE(0);
        if ((await memory.cas64(word, old, old + 1n)).swapped) i++;
      }
    }),
  );
  t.equal((await clients[2]?.read(word, 8))?.readBigUInt64LE(0), 1500n, 'cas64 loops');
});

t.test('16 concurrent clients x 200 FETCH_ADD64 on one word end at exactly 3,200', async (t) => {
  const word = (segment.extents[2] as { start: number }).start + 256;
  const clients = await Promise.all(
    Array.from({ length: 16 }, (_, i) => openMemory(nodes[i % 3] as AgentNode)),
  );
  t.teardown(() => Promise.all(clients.map((c) => c.close())));
  await clients[0]?.write(word, Buffer.alloc(8));
  const olds = await Promise.all(
    clients.map(async (memory) => {
      const seen: bigint[] = [];
      for (let i = 0; i < 200; i++) seen.push(await memory.fetchAdd64(word, 1n));
      return seen;
    }),
  );
  t.equal((await clients[5]?.read(word, 8))?.readBigUInt64LE(0), 3200n, 'the exact sum');
  const all = olds.flat().sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  t.ok(
    all.every((v, i) => v === BigInt(i)),
    'every old value 0..3199 was returned exactly once',
  );
});

t.test('a NetworkLock: mutual exclusion, takeover after the ttl, no foreign unlock', async (t) => {
  const base = (segment.extents[1] as { start: number }).start + 1024;
  const lockWordAt = base;
  const counter = base + 64;
  const clients = await Promise.all(nodes.map(openMemory));
  t.teardown(() => Promise.all(clients.map((c) => c.close())));
  await clients[0]?.write(base, Buffer.alloc(128));

  // 3 holders in turn, each a non-atomic read, +1, write under the lock.
  let inside = 0;
  let overlaps = 0;
  await Promise.all(
    clients.map(async (memory) => {
      for (let i = 0; i < 100; i++) {
        const lock = new NetworkLock(memory, lockWordAt);
        await lock.acquire({ ttlSeconds: 30, timeoutMs: 30_000 });
        if (++inside > 1) overlaps++;
        const value = (await memory.read(counter, 8)).readBigUInt64LE(0);
        await new Promise((r) => setImmediate(r)); // widen the race window
        const next = Buffer.alloc(8);
        next.writeBigUInt64LE(value + 1n);
        await memory.write(counter, next);
        inside--;
        await lock.release();
      }
    }),
  );
  t.equal(overlaps, 0, 'never two holders at once');
  t.equal((await clients[1]?.read(counter, 8))?.readBigUInt64LE(0), 300n, 'exactly 300');
  t.equal((await clients[2]?.read(lockWordAt, 8))?.readBigUInt64LE(0), 0n, 'free at the end');

  // A holder that crashes (never releases) is taken over after its ttl.
  const crashed = new NetworkLock(clients[0] as NetworkMemory, lockWordAt);
  const { expiry } = await crashed.acquire({ ttlSeconds: 1 });
  const other = new NetworkLock(clients[1] as NetworkMemory, lockWordAt);
  await t.rejects(other.acquire({ ttlSeconds: 5, timeoutMs: 0 }), {
    code: 'LOCK_TIMEOUT',
    details: { holder: crashed.token },
  });
  const started = Date.now();
  await other.acquire({ ttlSeconds: 5, timeoutMs: 5000 });
  t.ok(Date.now() >= expiry * 1000, 'taken only once the lease expired');
  t.ok(Date.now() - started < 3000, 'taken soon after the lease expired');
  t.match(await other.peek(), { owner: other.owner, expired: false }, 'the new holder');

  // The crashed holder cannot renew or release what is no longer its lock.
  await t.rejects(crashed.release(), { code: 'LOCK_NOT_HELD', details: { holder: other.token } });
  await t.rejects(crashed.renew({ ttlSeconds: 5 }), { code: 'LOCK_NOT_HELD' });
  // A client that never held it cannot unlock it either.
  const stranger = new NetworkLock(clients[2] as NetworkMemory, lockWordAt);
  await t.rejects(stranger.release(), { code: 'LOCK_NOT_HELD' });
  const renewed = await other.renew({ ttlSeconds: 10 });
  t.ok(renewed.expiry > Date.now() / 1000 + 8, 'renew extends the lease');
  // The token alone resumes the lock (what `mem unlock --token` does).
  await new NetworkLock(clients[2] as NetworkMemory, lockWordAt, { token: other.token }).release();
  t.equal(await other.peek(), null, 'released');
  await t.rejects(other.release(), { code: 'LOCK_NOT_HELD' }, 'a second release');
});

t.test('clusteradm mem lock / mem unlock', async (t) => {
  const cli = await adminCli('admin-lock');
  const word = `0x${((segment.extents[0] as { start: number }).start + 16_384).toString(16)}`;
  await cli('mem', 'write', word, '--hex', '0000000000000000');
  const locked = await cli('mem', 'lock', word, '--ttl', '30s');
  t.equal(locked.code, 0, locked.stderr);
  const token = locked.stdout.trim();
  t.match(token, /^[0-9a-f]{8}$/, 'prints the token');

  const busy = await cli('mem', 'lock', word, '--wait', '0');
  t.equal(busy.code, 1);
  t.match(busy.stderr, /LOCK_TIMEOUT/);
  t.match(busy.stderr, new RegExp(token));

  const wrong = await cli('mem', 'unlock', word, '--token', 'abcdef12');
  t.equal(wrong.code, 1);
  t.match(wrong.stderr, /LOCK_NOT_HELD/);

  const unlocked = await cli('mem', 'unlock', word, '--token', token, '-o', 'json');
  t.equal(unlocked.code, 0, unlocked.stderr);
  t.same(JSON.parse(unlocked.stdout), { address: word, unlocked: true });

  const json = await cli('mem', 'lock', 'netmem-64:16384', '--ttl', '1', '-o', 'json');
  t.equal(json.code, 0, json.stderr);
  t.match(JSON.parse(json.stdout), { segment: 'netmem-64', offset: 16384, token: /^[0-9a-f]{8}$/ });
  const again = await cli('mem', 'unlock', word, '--token', JSON.parse(json.stdout).token);
  t.equal(again.code, 0, 'a segment offset and its global address name the same word');
});

t.test('an address no node owns is ADDRESS_UNMAPPED', async (t) => {
  const memory = await openMemory(nodeA);
  t.teardown(() => memory.close());
  const { layout } = await admin.memory.layout();
  const last = layout.ranges.at(-1) as { start: number; size: number };
  const beyond = last.start + last.size + 64 * MiB;
  await t.rejects(memory.read(beyond, 16), {
    code: 'ADDRESS_UNMAPPED',
    details: { address: beyond },
  });
  await t.rejects(memory.read(0, 16), { code: 'ADDRESS_UNMAPPED' }, 'below the space');
  await t.rejects(memory.fetchAdd64(beyond, 1n), { code: 'ADDRESS_UNMAPPED' });
  await t.rejects(memory.fetchAdd64(last.start + 3, 1n), { code: 'INVALID_ARGUMENT' });
  // Part mapped, part not: nothing is read.
  await t.rejects(memory.read(last.start + last.size - 8, 16), { code: 'ADDRESS_UNMAPPED' });
});

/** `clusteradm` with an admin home of its own under `dir`. */
async function adminCli(name: string) {
  const home = join(dir, name);
  await mkdir(home);
  await writeFile(join(home, 'ca.crt'), cd.admin.ca);
  await writeFile(join(home, 'admin.crt'), cd.admin.cert);
  await writeFile(join(home, 'admin.key'), cd.admin.key, { mode: 0o600 });
  await writeFile(
    join(home, 'admin.json'),
    JSON.stringify({
      server: cd.urls,
      caFile: 'ca.crt',
      certFile: 'admin.crt',
      keyFile: 'admin.key',
    }),
  );
  const cli = async (...args: string[]) => {
    let stdout = '';
    let stderr = '';
    const code = await runClusteradm([...args, '--home', home], {
      stdout: (text) => {
        stdout += text;
      },
      stderr: (text) => {
        stderr += text;
      },
      env: {},
      userHome: tmpdir(),
      cwd: dir,
      now: Date.now,
      hostname,
    });
    return { code, stdout, stderr };
  };
  return cli;
}

t.test('clusteradm mem write then mem read of a segment offset', async (t) => {
  const cli = await adminCli('admin');
  const first = segment.extents[0] as { size: number };
  const at = `netmem-64:${first.size - 6}`; // crosses into the second extent

  const wrote = await cli('mem', 'write', at, '--data', 'hello, network memory', '-o', 'json');
  t.equal(wrote.code, 0, wrote.stderr);
  t.same(JSON.parse(wrote.stdout), { segment: 'netmem-64', offset: first.size - 6, length: 21 });

  const read = await cli('mem', 'read', at, '21');
  t.equal(read.code, 0, read.stderr);
  t.equal(read.stdout, 'hello, network memory');

  const hex = await cli('mem', 'read', at, '5', '-o', 'json');
  t.equal(JSON.parse(hex.stdout).hex, Buffer.from('hello').toString('hex'));

  const file = join(dir, 'out.bin');
  const bin = await cli('mem', 'write', 'netmem-64:4096', '--hex', '00ff10', '-o', 'json');
  t.equal(bin.code, 0, bin.stderr);
  const toFile = await cli('mem', 'read', 'netmem-64:4096', '3', '--file', file);
  t.equal(toFile.code, 0, toFile.stderr);
  t.same([...(await readFile(file))], [0, 255, 16]);

  const word = `0x${((segment.extents[0] as { start: number }).start + 8192).toString(16)}`;
  await cli('mem', 'write', word, '--hex', '0700000000000000');
  const cas = await cli('mem', 'cas', word, '7', '9', '-o', 'json');
  t.equal(cas.code, 0, cas.stderr);
  t.same(JSON.parse(cas.stdout), { address: word, swapped: true, old: '7' });
  const again = await cli('mem', 'cas', word, '7', '11', '-o', 'json');
  t.same(JSON.parse(again.stdout), { address: word, swapped: false, old: '9' });

  const unmapped = await cli('mem', 'read', '0x10', '8');
  t.equal(unmapped.code, 1);
  t.match(unmapped.stderr, /ADDRESS_UNMAPPED/);
  const usage = await cli('mem', 'write', 'netmem-64:0');
  t.equal(usage.code, 2, 'a write needs exactly one source');
});

t.test('a killed page server: a clear error or the restarted one, never a hang', async (t) => {
  const memory = await openMemory(nodeA);
  t.teardown(() => memory.close());
  const extent = segment.extents.find((e) => e.node === 'nm-b') as { start: number };
  await memory.read(extent.start, 8); // a connection to nm-b's page server is open
  const before = nodeB.agent.pageServer();
  process.kill(before?.pid as number, 'SIGKILL');

  const started = Date.now();
  const first = await memory.read(extent.start, 8).then(
    () => 'read',
    (err: { code?: string }) => err.code,
  );
  t.ok(['read', 'UNAVAILABLE'].includes(first as string), `settled as ${first}`);
  t.ok(Date.now() - started < 10_000, 'within the connect timeout');

  // The agent restarts it on a new port and publishes it; the same NetworkMemory follows.
  await until('a read through the restarted page server', async () => {
    const after = nodeB.agent.pageServer();
    if (!after || after.pid === before?.pid) return undefined;
    return (await memory.read(extent.start, 8)).length === 8 || undefined;
  });
  t.pass('the routing table followed the restarted page server');
});

t.test(
  'clusteradm mem routes: what netmem-run reads, from the layout and the page servers',
  async (t) => {
    const cli = await adminCli('admin-routes');
    const layout = await admin.memory.layout();
    const nodesNow = await admin.nodes.list();
    const routes = await cli('mem', 'routes');
    t.equal(routes.code, 0, routes.stderr);
    const expected = layout.layout.ranges
      .filter((r) => NAMES.includes(r.node))
      .map((r) => {
        const ps = nodesNow.find((n) => n.name === r.node)?.pageserver;
        return `0x${r.start.toString(16)}:${r.size}=${r.node}@${ps?.address}`;
      });
    const lines = routes.stdout.trim().split('\n');
    for (const line of expected) t.ok(lines.includes(line), `route ${line}`);
    t.ok(
      lines.every((l) => /^0x[0-9a-f]+:\d+=[a-z0-9-]+@127\.0\.0\.1:\d+$/.test(l)),
      'every line is START:SIZE=NODE@HOST:PORT',
    );

    const json = await cli('mem', 'routes', '-o', 'json');
    const items = (JSON.parse(json.stdout) as { items: { node: string; tls: boolean }[] }).items;
    t.same(
      items.filter((r) => NAMES.includes(r.node)).map((r) => r.tls),
      [true, true, true],
      'each route says its page server speaks mutual TLS',
    );

    const map = await cli('mem', 'routes', '--map', 'netmem-64');
    t.equal(map.code, 0, map.stderr);
    t.equal(
      map.stdout.trim(),
      segment.extents.map((e) => `0x${e.start.toString(16)}:${e.size}`).join(','),
      "--map prints the segment's extents back to back",
    );
    const missing = await cli('mem', 'routes', '--map', 'no-such-segment');
    t.equal(missing.code, 1);
    t.match(missing.stderr, /^error: SEGMENT_NOT_FOUND: /m);
  },
);
