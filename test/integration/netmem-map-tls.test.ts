/**
 * netmem (the C client and netmem_map) against page servers on mutual TLS:
 * the same checks as on plaintext (faults, read-ahead, write-back, locks),
 * an unmodified program under netmem-run summing a remote array like a local
 * copy, and the refusals: a client certificate from another CA (the server
 * refuses it) and a client that trusts another CA (it refuses the server):
 * the mapped access gets SIGBUS with a log line, never a hang.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createClusterCa } from '../../services/pki/index.ts';
import { nodeCertificateFiles, writePrivateFile } from '../harness/pki.ts';
import {
  buildNetmem,
  killedAtTeardown,
  MAP_TEST,
  NETMEM_RUN,
  type PageServer,
  runProgram,
  SUM_ARRAY,
  startPageServer,
} from './netmem-map-fixtures.ts';

const BASE = 0x4000_0000;
const SIZE = 16 * 1024 * 1024;
const hex = (n: number) => `0x${n.toString(16)}`;

// npm test installs libssl-dev first (scripts/ensure-os-deps.mjs); this test installs nothing.
const HAVE_OPENSSL = existsSync('/usr/include/openssl/ssl.h');
t.ok(HAVE_OPENSSL, 'OpenSSL headers present (apt-get install libssl-dev)');
buildNetmem();

const children = killedAtTeardown(t);
const dir = await mkdtemp(join(tmpdir(), 'amalgam-netmem-tls-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

const ca = await createClusterCa();
const other = await createClusterCa({ commonName: 'someone-else' });
const caFile = writePrivateFile(dir, 'ca.crt', ca.certPem);
const otherCaFile = writePrivateFile(dir, 'other-ca.crt', other.certPem);
const serverNames = ['a', 'b'];
const serverIds = [
  await nodeCertificateFiles(ca, 'a', dir),
  await nodeCertificateFiles(ca, 'b', dir),
];
const client = await nodeCertificateFiles(ca, 'c', dir);
const foreign = await nodeCertificateFiles(other, 'c-foreign', dir);

const servers: PageServer[] = [];
for (const [i, id] of serverIds.entries()) {
  const s = await startPageServer(BASE + i * SIZE, SIZE, { ...id, ca: caFile }, serverNames[i]);
  children.push(s.child);
  servers.push(s);
}
const routes = servers.map((s) => s.route).join(',');
const env = (id = client, trust = caFile) => ({
  NETMEM_ROUTES: routes,
  NETMEM_TIMEOUT_MS: '3000',
  NETMEM_TLS_CERT: id.cert,
  NETMEM_TLS_KEY: id.key,
  NETMEM_TLS_CA: trust,
});

t.test('faults, read-ahead, write-back and locks over mutual TLS', async (t) => {
  const r = await runProgram(
    MAP_TEST,
    ['basic', hex(BASE + SIZE - 4 * 1024 * 1024), String(8 << 20)],
    {
      env: { ...env(), NETMEM_FLUSH_MS: '200' },
      children,
    },
  );
  t.equal(r.code, 0, `exit status 0 (stderr: ${r.stderr})`);
  t.notOk(
    r.lines.some((l) => l.startsWith('FAIL')),
    r.lines.filter((l) => l.startsWith('FAIL')).join('; '),
  );
  t.ok(r.lines.includes('ok unmap-wrote-back') && r.lines.includes('ok fresh-after-lock'));
});

t.test('netmem-run over TLS: the same checksum as a local copy', async (t) => {
  const length = 24 * 1024 * 1024; // across both servers
  const data = Buffer.alloc(length);
  let x = 777;
  for (let i = 0; i < length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    data.writeUInt32LE(x >>> 0, i);
  }
  const file = join(dir, 'array.bin');
  await writeFile(file, data);
  const at = BASE + 2 * 1024 * 1024;
  const put = await runProgram(MAP_TEST, ['put', hex(at), file, 'mapped'], {
    env: env(),
    children,
  });
  t.equal(put.code, 0, `put through a mapping: ${put.stderr}`);
  const local = await runProgram(SUM_ARRAY, [file], { children });
  const remote = await runProgram(
    NETMEM_RUN,
    [
      '--route',
      (servers[0] as PageServer).route,
      '--route',
      (servers[1] as PageServer).route,
      '--tls-cert',
      client.cert,
      '--tls-key',
      client.key,
      '--tls-ca',
      caFile,
      '--map',
      `${hex(at)}:${length}`,
      '--',
      SUM_ARRAY,
    ],
    { children },
  );
  t.equal(remote.code, 0, `netmem-run exit 0 (stderr: ${remote.stderr})`);
  t.equal(remote.lines[0], local.lines[0], 'the same checksum');
});

t.test('a client certificate from another CA: refused, SIGBUS with a log line', async (t) => {
  const r = await runProgram(MAP_TEST, ['wait-scan', hex(BASE), String(SIZE)], {
    env: env(foreign, caFile),
    children,
    guardMs: 60_000,
  });
  t.equal(r.signal, 'SIGBUS', `killed by SIGBUS (code ${r.code}, stderr: ${r.stderr})`);
  t.match(r.stderr, /could not be fetched from 127\.0\.0\.1:\d+: E[A-Z]+ .*SIGBUS/);
});

t.test("a client that does not trust the server's CA: EACCES, SIGBUS", async (t) => {
  const r = await runProgram(MAP_TEST, ['wait-scan', hex(BASE), String(SIZE)], {
    env: env(client, otherCaFile),
    children,
    guardMs: 60_000,
  });
  t.equal(r.signal, 'SIGBUS', `killed by SIGBUS (code ${r.code}, stderr: ${r.stderr})`);
  t.match(r.stderr, /EACCES \(the owner's TLS certificate was refused\).*certificate/);
});
