/**
 * The network device space over mutual TLS: a page server with node b's
 * certificate serves a 64 MiB image; remotedev-fuse with node a's
 * certificate mounts it (tree marked tls). dd writes through the mount and
 * cmp reads back byte for byte; a mount whose certificate comes from another
 * CA, and a tree entry that says plain for a TLS owner, get EIO with a log
 * line, and the owner keeps serving.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createClusterCa } from '../../services/pki/index.ts';
import { type NodeIdentity, nodeCertificateFiles, writePrivateFile } from '../harness/pki.ts';
import {
  createImage,
  type Mount,
  type PageServer,
  remotedevBinaries,
  sh,
  startMount,
  startPageServer,
  stopMount,
  stopProcess,
} from './remotedev-fixtures.ts';

const MiB = 1024 * 1024;
const SIZE = 64 * MiB;
const HAVE_OPENSSL = existsSync('/usr/include/openssl/ssl.h');

t.test('remote devices over mutual TLS', async (t) => {
  // `npm test` installs libssl-dev first (scripts/ensure-os-deps.mjs); without it this fails, never skips.
  t.ok(HAVE_OPENSSL, 'OpenSSL headers present (apt-get install libssl-dev)');
  if (!HAVE_OPENSSL) return;
  const bins = remotedevBinaries();
  const ca = await createClusterCa();
  const otherCa = await createClusterCa({ commonName: 'someone-else' });
  const dir = mkdtempSync(join(tmpdir(), `remotedev-tls-${process.pid}-`));
  const mounts: Mount[] = [];
  const servers: PageServer[] = [];
  t.teardown(async () => {
    for (const m of mounts) await stopMount(m);
    for (const s of servers) await stopProcess(s.child);
    rmSync(dir, { recursive: true, force: true });
  });
  const file = (name: string, text: string) => writePrivateFile(dir, name, text);
  const b = await nodeCertificateFiles(ca, 'b', dir);
  const a = await nodeCertificateFiles(ca, 'a', dir);
  const foreign = await nodeCertificateFiles(otherCa, 'a', dir, 'foreign');
  const img = join(dir, 'b-disk0.img');
  createImage(img, SIZE);
  const devices = file('devices', `disk0 rw ${img}\n`);
  const caFile = file('ca.crt', ca.certPem);
  const server = await startPageServer(bins.pageserver, devices, [
    '--tls-cert',
    b.cert,
    '--tls-key',
    b.key,
    '--tls-ca',
    caFile,
  ]);
  servers.push(server);

  const tree = file(
    'tree',
    `b disk0 ${SIZE} rw ${server.address} tls\nb wrongmode ${SIZE} rw ${server.address} plain\n`,
  );
  const mnt = join(dir, 'mnt-a');
  const mntForeign = join(dir, 'mnt-foreign');
  mkdirSync(mnt);
  mkdirSync(mntForeign);
  const tlsArgs = (id: NodeIdentity) => [
    '--cert',
    id.cert,
    '--key',
    id.key,
    '--ca',
    caFile,
    '--timeout-ms',
    '2000',
  ];
  const m = await startMount(bins.fuse, mnt, tree, tlsArgs(a));
  mounts.push(m);
  const mf = await startMount(bins.fuse, mntForeign, tree, tlsArgs(foreign));
  mounts.push(mf);

  const data = join(dir, 'data');
  writeFileSync(data, randomBytes(9 * MiB + 333));
  const w = await sh('dd', [
    `if=${data}`,
    `of=${join(mnt, 'b', 'disk0')}`,
    'bs=1M',
    'seek=1',
    'conv=notrunc,fsync',
    'status=none',
  ]);
  t.equal(w.code, 0, `dd write over TLS: ${w.stderr}`);
  const back = join(dir, 'back');
  const r = await sh('dd', [
    `if=${join(mnt, 'b', 'disk0')}`,
    `of=${back}`,
    'bs=1M',
    'skip=1',
    'count=10',
    'status=none',
  ]);
  t.equal(r.code, 0, `dd read over TLS: ${r.stderr}`);
  t.equal((await sh('cmp', ['-n', String(9 * MiB + 333), data, back])).code, 0, 'cmp: identical');
  const onDisk = await sh('cmp', ['-n', String(9 * MiB + 333), '-i', `0:${MiB}`, data, img]);
  t.equal(onDisk.code, 0, "the owner's image holds the bytes");

  const foreignRead = await sh('dd', [
    `if=${join(mntForeign, 'b', 'disk0')}`,
    'of=/dev/null',
    'bs=4k',
    'count=1',
  ]);
  t.not(foreignRead.code, 0, 'a certificate from another CA is refused');
  t.match(foreignRead.stderr, /Input\/output error/);
  t.match(server.stderr(), /TLS handshake refused/);

  const plainToTls = await sh('dd', [
    `if=${join(mnt, 'b', 'wrongmode')}`,
    'of=/dev/null',
    'bs=4k',
    'count=1',
  ]);
  t.not(plainToTls.code, 0, 'plaintext to a TLS owner fails');
  t.match(plainToTls.stderr, /Input\/output error/);
  t.match(m.stderr(), /wrongmode on .*\(plain\)/);

  const again = await sh('cmp', ['-n', '4096', data, join(mnt, 'b', 'disk0'), '-i', `0:${MiB}`]);
  t.equal(again.code, 0, 'the owner keeps serving members');
});
