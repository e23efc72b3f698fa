/**
 * The native page server over mutual TLS, driven through the TypeScript
 * client: a cluster CA and node certificates from the PKI library; members
 * read, write, CAS and STAT; clients without a certificate, with one from
 * another CA, or with a cluster certificate that names no member are refused
 * during the handshake, and the server keeps serving; pipelining over TLS
 * stays in order; the client checks the server's node identity.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import {
  PageServerClient,
  type PageServerTlsOptions,
} from '../../services/client/pageserver-client.ts';
import {
  type ClusterCa,
  createClusterCa,
  createKeyAndCsr,
  issueAdminCredential,
  signCsr,
} from '../../services/pki/index.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const NATIVE = join(ROOT, 'native');
const BINARY = join(NATIVE, 'build', 'pageserver');
const START = 0x8000_0000n;
const SIZE = 16n * 1024n * 1024n;

// npm test installs libssl-dev first (scripts/ensure-os-deps.mjs); this test installs nothing.
const HAVE_OPENSSL = existsSync('/usr/include/openssl/ssl.h');
if (HAVE_OPENSSL && !existsSync(join(NATIVE, 'build', 'obj', '.mode-tls'))) {
  execFileSync('make', ['-C', NATIVE], { stdio: 'ignore' }); // built before the headers were there
} else if (!existsSync(BINARY)) {
  execFileSync('make', ['-C', NATIVE], { stdio: 'ignore' });
}

async function nodeCert(
  ca: ClusterCa,
  name: string,
  subject?: { commonName: string; organization: string },
): Promise<{ cert: string; key: string }> {
  const commonName = subject?.commonName ?? `node:${name}`;
  const { keyPem, csrPem } = await createKeyAndCsr({ commonName, dnsNames: [name] });
  const cert = await signCsr(ca, csrPem, {
    commonName,
    organization: subject?.organization ?? 'amalgam:nodes',
    dnsNames: [name],
    usages: ['client', 'server'],
    validityDays: 1,
  });
  return { cert, key: keyPem };
}

function startServer(args: string[]): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(BINARY, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    lines.once('line', (line) => {
      const m = /^listening 127\.0\.0\.1:(\d+)$/.exec(line);
      if (!m?.[1]) reject(new Error(`unexpected first line: ${line}`));
      else resolve({ child, port: Number(m[1]) });
    });
    child.once('exit', (code) => reject(new Error(`pageserver exited ${code}: ${stderr}`)));
  });
}

t.test('page server over mutual TLS', async (t) => {
  // `npm test` installs libssl-dev first (scripts/ensure-os-deps.mjs); without it this test fails, never skips.
  t.ok(HAVE_OPENSSL, 'OpenSSL headers present (apt-get install libssl-dev)');
  if (!HAVE_OPENSSL) return;
  const ca = await createClusterCa();
  const otherCa = await createClusterCa({ commonName: 'someone-else' });
  const serverId = await nodeCert(ca, 'a');
  const clientId = await nodeCert(ca, 'b');
  const foreignId = await nodeCert(otherCa, 'b');
  const strangerId = await nodeCert(ca, 'c', { commonName: 'intruder', organization: 'evil' });
  const admin = await issueAdminCredential(ca, { validityDays: 1 });

  const dir = mkdtempSync(join(tmpdir(), 'amalgam-pstls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text, { mode: 0o600 });
    return p;
  };
  const { child, port } = await startServer([
    '--tls-cert',
    file('a.crt', serverId.cert),
    '--tls-key',
    file('a.key', serverId.key),
    '--tls-ca',
    file('ca.crt', ca.certPem),
    '--listen',
    '127.0.0.1:0',
    '--range-start',
    `0x${START.toString(16)}`,
    '--range-size',
    '16M',
  ]);
  let serverStderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    serverStderr += d.toString();
  });
  t.teardown(async () => {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  });

  const member: PageServerTlsOptions = { ca: ca.certPem, ...clientId, node: 'a' };
  const clients: PageServerClient[] = [];
  t.teardown(async () => {
    for (const c of clients) await c.close();
  });
  const connect = async (tls: PageServerTlsOptions) => {
    const c = await PageServerClient.connect('127.0.0.1', port, { tls });
    clients.push(c);
    return c;
  };

  /** A refused client fails at connect or, in TLS 1.3, at its first request. */
  const expectRefused = async (t: Test, what: string, tls: PageServerTlsOptions | undefined) => {
    let ok = false;
    try {
      const c = await PageServerClient.connect('127.0.0.1', port, tls ? { tls } : {});
      clients.push(c);
      await c.read(START, 8);
      ok = true;
    } catch {
      // refused
    }
    t.notOk(ok, `${what}: refused`);
  };

  const c1 = await connect(member);

  await t.test('a member reads, writes, CASes, FETCH_ADDs and STATs', async (t) => {
    const bytes = Buffer.from('hello over mutual tls');
    await c1.write(START + 64n, bytes);
    t.same(await c1.read(START + 64n, bytes.length), bytes);
    const cas = await c1.cas64(START + 128n, 0n, 42n);
    t.same(cas, { swapped: true, old: 0n });
    const cas2 = await c1.cas64(START + 128n, 0n, 43n);
    t.same(cas2, { swapped: false, old: 42n });
    t.equal(await c1.fetchAdd64(START + 128n, 8n), 42n);
    const c2 = await connect({ ca: ca.certPem, cert: admin.certPem, key: admin.keyPem });
    t.same(await c2.read(START + 128n, 8), Buffer.from([50, 0, 0, 0, 0, 0, 0, 0]), 'admin too');
    const stats = await c1.stat();
    t.equal(stats.rangeStart, START);
    t.equal(stats.rangeSize, SIZE);
    t.ok(stats.requestsWrite >= 1n);
    t.ok(stats.requestsCas64 >= 2n);
  });

  await t.test('non-members are refused during the handshake', async (t) => {
    await expectRefused(t, 'no client certificate', { ca: ca.certPem } as PageServerTlsOptions);
    await expectRefused(t, 'certificate from another CA', { ca: ca.certPem, ...foreignId });
    await expectRefused(t, 'cluster certificate naming no member', {
      ca: ca.certPem,
      ...strangerId,
    });
    await expectRefused(t, 'plaintext client', undefined);
    t.match(serverStderr, /TLS handshake refused/);
  });

  await t.test('the client checks the server is the expected node', async (t) => {
    await t.rejects(
      PageServerClient.connect('127.0.0.1', port, { tls: { ...member, node: 'z' } }),
      /expected node:z/,
    );
    await t.rejects(
      PageServerClient.connect('127.0.0.1', port, {
        tls: { ca: otherCa.certPem, ...clientId },
      }),
      'a server outside the trusted CA is refused',
    );
  });

  await t.test('the server keeps serving after refusals', async (t) => {
    t.same(await c1.read(START + 64n, 5), Buffer.from('hello'), 'the old connection');
    const c3 = await connect(member);
    t.same(await c3.read(START + 64n, 5), Buffer.from('hello'), 'a new connection');
    const stats = await c3.stat();
    t.ok(stats.connectionsAccepted >= 8n, `accepted ${stats.connectionsAccepted}`);
  });

  await t.test('pipelined requests over TLS are answered in order', async (t) => {
    const c = await connect(member);
    const order: number[] = [];
    const ops: Promise<unknown>[] = [];
    for (let i = 0; i < 1000; i++) {
      const addr = START + 0x10000n + BigInt(i) * 8n;
      const v = Buffer.alloc(8);
      v.writeUInt32LE(i, 0);
      ops.push(c.write(addr, v).then(() => order.push(2 * i)));
      ops.push(
        c.read(addr, 8).then((b) => {
          order.push(2 * i + 1);
          return b.readUInt32LE(0);
        }),
      );
    }
    const results = await Promise.all(ops);
    t.same(
      order,
      Array.from({ length: 2000 }, (_, i) => i),
      'responses arrive in request order',
    );
    t.ok(
      results.every((r, i) => i % 2 === 0 || r === (i - 1) / 2),
      'every read sees the write before it',
    );
  });

  await t.test(
    'large pipelined payloads (1 MiB) survive partial TLS reads and writes',
    async (t) => {
      const c = await connect(member);
      const big = Buffer.alloc(1 << 20);
      for (let i = 0; i < big.length; i++) big[i] = (i * 131 + 7) & 0xff;
      const writes = [];
      for (let k = 0; k < 8; k++) writes.push(c.write(START + BigInt(k) * (1n << 20n), big));
      await Promise.all(writes);
      const reads = [];
      for (let k = 0; k < 8; k++) reads.push(c.read(START + BigInt(k) * (1n << 20n), 1 << 20));
      const got = await Promise.all(reads);
      t.ok(
        got.every((b) => b.equals(big)),
        '8 MiB back byte for byte',
      );
    },
  );
});
