import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { startAgent } from '../../services/agent/agent.ts';
import { loadAgentConfig } from '../../services/agent/config.ts';
import { createClient } from '../../services/client/index.ts';
import { PageServerClient } from '../../services/client/pageserver-client.ts';
import { startClusterdReplicas } from '../harness/clusterd.ts';
import { pageServerBinary } from '../harness/native.ts';
import { joinNode } from '../harness/node.ts';
import { until } from '../harness/until.ts';

const BINARY = pageServerBinary();
const MiB = 1024 * 1024;

t.test('an agent serves its range over mutual TLS', async (t) => {
  const cd = await startClusterdReplicas({ count: 1, store: { backend: 'embedded' } });
  t.teardown(() => cd.destroy());
  const dir = await mkdtemp(join(tmpdir(), 'amalgam-agent-tls-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const admin = createClient({ endpoints: cd.urls, ...cd.admin });
  t.teardown(() => admin.close());

  const name = 'tls-node';
  const { joined } = await joinNode(cd, name, { home: dir, contributedBytes: 16 * MiB });
  await writeFile(
    join(dir, 'agent.json'),
    JSON.stringify({
      server: cd.urls,
      name,
      certFile: 'node.crt',
      keyFile: 'node.key',
      caFile: 'ca.crt',
      heartbeatSeconds: 1,
      pageserver: { binary: BINARY },
    }),
  );
  const agent = await startAgent({
    config: await loadAgentConfig(join(dir, 'agent.json')),
    logger: pino({ level: 'silent' }),
    healthMs: 300,
  });
  t.teardown(() => agent.close());

  const node = await until('the node Ready with a TLS page server', async () => {
    const n = await admin.nodes.get(name);
    return n.state === 'Ready' && n.pageserver?.tls ? n : undefined;
  });
  t.equal(node.pageserver?.tls, true, 'it publishes a TLS endpoint');
  const [host, port] = (node.pageserver?.address ?? '').split(':');

  const member = await PageServerClient.connect(host as string, Number(port), {
    tls: { ca: cd.admin.ca, cert: cd.admin.cert, key: cd.admin.key, node: name },
  });
  t.teardown(() => member.close());
  const start = BigInt(joined.node.range.start);
  await member.write(start, Buffer.from('over tls'));
  t.same(await member.read(start, 8), Buffer.from('over tls'), 'a member reads and writes');

  let refused = false;
  try {
    const plain = await PageServerClient.connect(host as string, Number(port));
    await plain.read(start, 8).finally(() => plain.close());
  } catch {
    refused = true;
  }
  t.ok(refused, 'a plaintext client gets nothing');
});
