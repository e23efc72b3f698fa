/**
 * With `pageserver.tls`, the agent runs its page server on mutual TLS with the
 * node's own certificate: it publishes `tls: true`, health-checks it over TLS
 * (the node turns Ready), members (the admin credential) read and write
 * through it, and a plaintext client gets nothing.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import t from 'tap';
import { startAgent } from '../../services/agent/agent.ts';
import { loadAgentConfig } from '../../services/agent/config.ts';
import { createClient } from '../../services/client/index.ts';
import { PageServerClient } from '../../services/client/pageserver-client.ts';
import { createKeyAndCsr } from '../../services/controlplane/pki/index.ts';
import { startClusterdReplicas } from '../harness/clusterd.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const NATIVE = join(ROOT, 'native');
const BINARY = join(NATIVE, 'build', 'pageserver');
if (!existsSync(BINARY) || !existsSync(join(NATIVE, 'build', 'obj', '.mode-tls'))) {
  execFileSync('make', ['-C', NATIVE], { stdio: 'ignore' });
}
const MiB = 1024 * 1024;

async function until<T>(
  what: string,
  check: () => Promise<T | undefined>,
  ms = 30_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

t.test('an agent serves its range over mutual TLS', async (t) => {
  const cd = await startClusterdReplicas({ count: 1, store: { backend: 'embedded' } });
  t.teardown(() => cd.destroy());
  const dir = await mkdtemp(join(tmpdir(), 'amalgam-agent-tls-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const admin = createClient({ endpoints: cd.urls, ...cd.admin });
  t.teardown(() => admin.close());

  const name = 'tls-node';
  const { token } = await admin.tokens.create({});
  const { csrPem, keyPem } = await createKeyAndCsr({ commonName: name });
  const anonymous = createClient({ endpoints: cd.urls, ca: cd.admin.ca });
  const joined = await anonymous.nodes.join({
    token,
    name,
    csr: csrPem,
    capacity: {
      memoryBytes: 64 * MiB,
      swapBytes: 0,
      contributedBytes: 16 * MiB,
      cpus: 1,
      cpuSpeed: 1,
    },
  });
  await anonymous.close();
  await writeFile(join(dir, 'node.crt'), joined.certificate);
  await writeFile(join(dir, 'node.key'), keyPem, { mode: 0o600 });
  await writeFile(join(dir, 'ca.crt'), joined.caCertificate);
  await writeFile(
    join(dir, 'agent.json'),
    JSON.stringify({
      server: cd.urls,
      name,
      certFile: 'node.crt',
      keyFile: 'node.key',
      caFile: 'ca.crt',
      heartbeatSeconds: 1,
      pageserver: { binary: BINARY, tls: true },
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
