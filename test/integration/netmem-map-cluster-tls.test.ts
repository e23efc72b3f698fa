/**
 * netmem_map against agents whose page servers speak mutual TLS
 * (pageserver.tls): node A's agent serves a segment; an unmodified program
 * run by netmem-run with node B's own certificate, key and the cluster CA sums
 * it exactly like a local copy. The route table comes from the layout and the
 * published endpoints, as on plaintext.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { type Agent, startAgent } from '../../services/agent/agent.ts';
import { createClient } from '../../services/client/index.ts';
import { NetworkMemory } from '../../services/client/network-memory.ts';
import { startClusterdReplicas } from '../harness/clusterd.ts';
import { pageServerBinary } from '../harness/native.ts';
import { type JoinedNode, joinNode } from '../harness/node.ts';
import { until } from '../harness/until.ts';
import {
  buildNetmem,
  exited,
  NETMEM_RUN,
  routeTable,
  runProgram,
  SUM_ARRAY,
} from './netmem-map-fixtures.ts';

const MiB = 1024 * 1024;
const NAMES = ['nmt-a', 'nmt-b'];

buildNetmem();
const BINARY = pageServerBinary();

const children: ChildProcess[] = [];
t.teardown(async () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await exited(c);
  }
});
const cd = await startClusterdReplicas({ count: 1, store: { backend: 'embedded' } });
t.teardown(() => cd.destroy());
const dir = await mkdtemp(join(tmpdir(), 'amalgam-netmem-map-tls-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const admin = createClient({ endpoints: cd.urls, ...cd.admin });
t.teardown(() => admin.close());

const joined: JoinedNode[] = [];
const agents: Agent[] = [];
t.teardown(() => Promise.all(agents.map((a) => a.close())));
for (const name of NAMES) {
  const node = await joinNode(cd, name, { home: join(dir, name), contributedBytes: 64 * MiB });
  joined.push(node);
  agents.push(
    await startAgent({
      config: {
        server: cd.urls,
        name,
        ...node.files,
        heartbeatSeconds: 1,
        pageserver: { binary: BINARY, tls: true },
      },
      logger: pino({ level: process.env.AGENT_LOG ?? 'silent' }),
      healthMs: 500,
    }),
  );
}
await until('both TLS page servers published', async () => {
  const list = (await admin.nodes.list()).filter((n) => NAMES.includes(n.name));
  return list.length === 2 && list.every((n) => n.pageserver?.tls === true) ? true : undefined;
});

t.test(
  'a C program with node B credentials sums a segment on node A over mutual TLS',
  async (t) => {
    const size = 24 * MiB;
    const segment = await admin.memory.allocateSegment({
      size,
      placement: { mode: 'pinned', node: 'nmt-a' },
      id: 'netmem-map-tls',
    });
    const first = segment.extents[0] as { start: number; size: number };
    t.equal(segment.extents.length, 1, 'one extent');
    const data = Buffer.alloc(size);
    let x = 4242;
    for (let i = 0; i < size; i += 4) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      data.writeUInt32LE(x >>> 0, i);
    }
    const memory = await NetworkMemory.open({
      client: admin,
      tls: { ca: cd.admin.ca, cert: cd.admin.cert, key: cd.admin.key },
    });
    t.teardown(() => memory.close());
    await memory.writeSegment(segment, 0, data);
    const copy = join(dir, 'copy.bin');
    await writeFile(copy, data);
    const routes = join(dir, 'routes.txt');
    await writeFile(routes, await routeTable(admin));

    const local = await runProgram(SUM_ARRAY, [copy], { children });
    const nodeB = (joined[1] as JoinedNode).files;
    const remote = await runProgram(
      NETMEM_RUN,
      [
        '--routes-file',
        routes,
        '--tls-cert',
        nodeB.certFile,
        '--tls-key',
        nodeB.keyFile,
        '--tls-ca',
        nodeB.caFile,
        '--map',
        `0x${first.start.toString(16)}:${size}`,
        '--',
        SUM_ARRAY,
      ],
      { children },
    );
    t.equal(remote.code, 0, `netmem-run exit 0 (stderr: ${remote.stderr})`);
    t.equal(remote.lines[0], local.lines[0], 'the same checksum as the local copy');

    const plain = await runProgram(
      NETMEM_RUN,
      ['--routes-file', routes, '--map', `0x${first.start.toString(16)}:${size}`, '--', SUM_ARRAY],
      { children, env: { NETMEM_TIMEOUT_MS: '2000' } },
    );
    t.equal(plain.signal, 'SIGBUS', 'without TLS credentials: SIGBUS, not a hang');
    t.match(plain.stderr, /could not be fetched from .*: E[A-Z]+/);
  },
);
