/**
 * The network device space, native data path, without the agent: page
 * servers on loopback serve 64 MiB images from --devices files, two
 * remotedev-fuse mounts (one per "node") show them as <mount>/<machine>/<dev>.
 * A write with dd through one mount is read back byte for byte through the
 * other with cmp; ro refuses writes with EROFS; a device the owner does not
 * export is EACCES, one the tree does not list is invisible; SIGHUP re-reads
 * the page server's --devices and the mount's --tree; a killed or stopped
 * owner gives EIO within the timeout, never a hang.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { until } from '../harness/until.ts';
import {
  createImage,
  errnoOf,
  isMounted,
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
const TIMEOUT_MS = 1500; // remotedev-fuse --timeout-ms

t.test('remote devices through FUSE mounts, two page servers on loopback', async (t) => {
  const bins = remotedevBinaries();
  t.ok(existsSync(bins.fuse), 'remotedev-fuse is built (needs fuse3 + libfuse3-dev)');
  if (!existsSync(bins.fuse)) return;

  const dir = mkdtempSync(join(tmpdir(), `remotedev-${process.pid}-`));
  const servers: PageServer[] = [];
  const mounts: Mount[] = [];
  t.teardown(async () => {
    for (const m of mounts) await stopMount(m);
    for (const s of servers) await stopProcess(s.child);
    rmSync(dir, { recursive: true, force: true });
  });

  const roContent = randomBytes(2 * MiB);
  createImage(join(dir, 'b-disk0.img'), SIZE);
  createImage(join(dir, 'b-ro.img'), SIZE, roContent);
  createImage(join(dir, 'b-secret.img'), SIZE); // never listed in B's --devices at first
  createImage(join(dir, 'c-disk1.img'), SIZE);
  createImage(join(dir, 'd-disk2.img'), SIZE);
  const devB = join(dir, 'devices-b');
  const devC = join(dir, 'devices-c');
  const devD = join(dir, 'devices-d');
  writeFileSync(
    devB,
    `# node b\ndisk0 rw ${dir}/b-disk0.img\n\nrodisk ro ${dir}/b-ro.img  # a comment\n`,
  );
  writeFileSync(devC, `disk1 rw ${dir}/c-disk1.img\n`);
  writeFileSync(devD, `disk2 rw ${dir}/d-disk2.img\n`);
  const b = await startPageServer(bins.pageserver, devB);
  servers.push(b);
  const c = await startPageServer(bins.pageserver, devC);
  servers.push(c);
  const d = await startPageServer(bins.pageserver, devD);
  servers.push(d);

  const tree =
    `b disk0 ${SIZE} rw ${b.address} plain\n` +
    `b rodisk ${SIZE} ro ${b.address} plain\n` +
    `b secret ${SIZE} rw ${b.address} plain\n` + // listed here, not exported by b
    `c disk1 ${SIZE} rw ${c.address} plain\n` +
    `d disk2 ${SIZE} rw ${d.address} plain\n`;
  const treeA = join(dir, 'tree-a');
  const treeC = join(dir, 'tree-c');
  writeFileSync(treeA, tree);
  writeFileSync(treeC, tree);
  const mntA = join(dir, 'mnt-a');
  const mntC = join(dir, 'mnt-c');
  mkdirSync(mntA);
  mkdirSync(mntC);
  const opts = ['--plaintext-loopback', '--timeout-ms', String(TIMEOUT_MS)];
  const a = await startMount(bins.fuse, mntA, treeA, opts);
  mounts.push(a);
  const cm = await startMount(bins.fuse, mntC, treeC, [...opts, '--ro-cache-mb', '4']);
  mounts.push(cm);
  t.ok(isMounted(mntA) && isMounted(mntC), 'both mounts are up');

  t.test('a directory per machine and a file per device with its size', async (t) => {
    t.same(readdirSync(mntA).sort(), ['b', 'c', 'd']);
    t.same(readdirSync(join(mntA, 'b')).sort(), ['disk0', 'rodisk', 'secret']);
    t.equal(statSync(join(mntA, 'b', 'disk0')).size, SIZE);
    t.ok(statSync(join(mntA, 'c')).isDirectory());
  });

  t.test('dd through mount A, cmp through mount C, byte for byte', async (t) => {
    const data = join(dir, 'data');
    writeFileSync(data, randomBytes(24 * MiB + 12345)); // not a whole number of blocks
    const w = await sh('dd', [
      `if=${data}`,
      `of=${join(mntA, 'b', 'disk0')}`,
      'bs=1M',
      'seek=3',
      'conv=notrunc,fsync',
      'status=none',
    ]);
    t.equal(w.code, 0, `dd write: ${w.stderr}`);
    const back = join(dir, 'back');
    const r = await sh('dd', [
      `if=${join(mntC, 'b', 'disk0')}`,
      `of=${back}`,
      'bs=1M',
      'skip=3',
      `count=${Math.ceil((24 * MiB + 12345) / MiB)}`,
      'status=none',
    ]);
    t.equal(r.code, 0, `dd read: ${r.stderr}`);
    const cmp = await sh('cmp', ['-n', String(24 * MiB + 12345), data, back]);
    t.equal(cmp.code, 0, `cmp via the other mount: ${cmp.stderr}`);
    const img = await sh('cmp', [
      '-n',
      String(24 * MiB + 12345),
      '-i',
      `0:${3 * MiB}`,
      data,
      join(dir, 'b-disk0.img'),
    ]);
    t.equal(img.code, 0, `the owner's image holds the bytes: ${img.stderr}`);
    // small unaligned write and read at the very end of the device
    const fd = openSync(join(mntA, 'b', 'disk0'), 'r+');
    const tail = randomBytes(777);
    t.equal(writeSync(fd, tail, 0, tail.length, SIZE - 777), 777);
    t.equal(
      errnoOf(() => writeSync(fd, tail, 0, 10, SIZE)),
      'ENOSPC',
      'no write past the end',
    );
    closeSync(fd);
    const fd2 = openSync(join(mntC, 'b', 'disk0'), 'r');
    const got = Buffer.alloc(1000);
    t.equal(readSync(fd2, got, 0, 1000, SIZE - 777), 777, 'a read at the end is short');
    t.ok(got.subarray(0, 777).equals(tail), 'tail bytes match');
    t.equal(readSync(fd2, got, 0, 10, SIZE), 0, 'EOF at the size');
    closeSync(fd2);
  });

  t.test('8 concurrent writers and readers on one device, each region byte for byte', async (t) => {
    const region = 2 * MiB + 4096 * 3 + 17; // odd size, so requests straddle chunks
    const files = Array.from({ length: 8 }, (_, i) => {
      const f = join(dir, `part-${i}`);
      writeFileSync(f, randomBytes(region));
      return f;
    });
    const base = 32 * MiB; // after the region the dd test uses
    const writes = await Promise.all(
      files.map((f, i) =>
        sh('dd', [
          `if=${f}`,
          `of=${join(mntA, 'b', 'disk0')}`,
          'bs=64k',
          'oflag=seek_bytes',
          `seek=${base + i * (region + 4096)}`,
          'conv=notrunc',
          'status=none',
        ]),
      ),
    );
    t.same(
      writes.map((w) => w.code),
      files.map(() => 0),
      'all writes succeed',
    );
    const cmps = await Promise.all(
      files.map((f, i) =>
        sh('cmp', [
          '-n',
          String(region),
          '-i',
          `0:${base + i * (region + 4096)}`,
          f,
          join(mntC, 'b', 'disk0'),
        ]),
      ),
    );
    t.same(
      cmps.map((c) => c.code),
      files.map(() => 0),
      'every region reads back through the other mount',
    );
  });

  t.test('ro: reads work (also cached), writes are EROFS', async (t) => {
    const rdev = join(mntC, 'b', 'rodisk');
    const head = Buffer.alloc(2 * MiB);
    const fd = openSync(rdev, 'r');
    for (let off = 0; off < head.length; off += 4096) readSync(fd, head, off, 4096, off);
    closeSync(fd);
    t.ok(head.equals(roContent), '4 KiB reads through the ro cache match the image');
    t.ok(
      readFileSync(rdev)
        .subarray(0, 2 * MiB)
        .equals(roContent),
      'bulk read matches',
    );
    t.equal(
      errnoOf(() => openSync(join(mntA, 'b', 'rodisk'), 'r+')),
      'EROFS',
    );
    t.equal(
      errnoOf(() => openSync(join(mntA, 'b', 'rodisk'), 'w')),
      'EROFS',
    );
    const dd = await sh('dd', [
      'if=/dev/zero',
      `of=${join(mntA, 'b', 'rodisk')}`,
      'bs=4k',
      'count=1',
      'conv=notrunc',
    ]);
    t.not(dd.code, 0, 'dd to a ro device fails');
    t.match(dd.stderr, /Read-only file system/);
  });

  t.test(
    'unexported: EACCES when listed but not exported; invisible when not listed',
    async (t) => {
      t.equal(
        errnoOf(() => openSync(join(mntA, 'b', 'secret'), 'r')),
        'EACCES',
      );
      t.equal(
        errnoOf(() => statSync(join(mntA, 'b', 'nothere'))),
        'ENOENT',
      );
      t.equal(
        errnoOf(() => statSync(join(mntA, 'zz'))),
        'ENOENT',
      );
      t.notOk(readdirSync(join(mntA, 'b')).includes('nothere'));
    },
  );

  t.test('SIGHUP: the page server re-reads --devices, the mount re-reads --tree', async (t) => {
    writeFileSync(devB, `disk0 rw ${dir}/b-disk0.img\nsecret rw ${dir}/b-secret.img\n`);
    b.child.kill('SIGHUP');
    await until(
      'secret exported after SIGHUP',
      () => errnoOf(() => closeSync(openSync(join(mntA, 'b', 'secret'), 'r+'))) === 'OK',
    );
    t.pass('secret now opens read-write');
    await until(
      'rodisk no longer exported',
      () => errnoOf(() => openSync(join(mntA, 'b', 'rodisk'), 'r')) === 'EACCES',
    );
    t.pass('rodisk, dropped from --devices, is EACCES');
    // a bad file keeps the old table
    writeFileSync(devB, 'BAD NAME here\n');
    b.child.kill('SIGHUP');
    await until('the error is logged', () => /keeping the previous 2 devices/.test(b.stderr()));
    t.equal(
      errnoOf(() => closeSync(openSync(join(mntA, 'b', 'secret'), 'r'))),
      'OK',
      'old table kept',
    );

    writeFileSync(
      treeA,
      `${tree}e late ${4 * MiB} rw ${b.address} plain\n`.replace(/^b rodisk.*\n/m, ''),
    );
    a.child.kill('SIGHUP');
    await until('machine e appears', () => readdirSync(mntA).includes('e'));
    t.same(readdirSync(mntA).sort(), ['b', 'c', 'd', 'e']);
    await until(
      'rodisk disappears',
      () => errnoOf(() => statSync(join(mntA, 'b', 'rodisk'))) === 'ENOENT',
    );
    t.equal(statSync(join(mntA, 'e', 'late')).size, 4 * MiB);
    t.equal(
      errnoOf(() => openSync(join(mntA, 'e', 'late'), 'r')),
      'EACCES',
      'b does not export "late"',
    );
  });

  t.test('owner gone: EIO within the timeout, with a log line; no hang', async (t) => {
    // killed: connection refused at once
    c.child.kill('SIGKILL');
    await until('c is dead', () => c.child.exitCode !== null || c.child.signalCode !== null);
    let start = Date.now();
    const r = await sh('dd', [
      `if=${join(mntA, 'c', 'disk1')}`,
      'of=/dev/null',
      'bs=4k',
      'count=1',
    ]);
    t.not(r.code, 0);
    t.match(r.stderr, /Input\/output error/);
    t.ok(Date.now() - start < 10 * TIMEOUT_MS, `EIO after ${Date.now() - start} ms`);
    await until('a log line names the owner', () => a.stderr().includes(`disk1 on ${c.address}`));
    // stopped: the connection is accepted by the kernel but nobody answers
    const fd = openSync(join(mntA, 'd', 'disk2'), 'r+');
    d.child.kill('SIGSTOP');
    start = Date.now();
    const w = await sh('dd', [
      'if=/dev/zero',
      `of=${join(mntA, 'd', 'disk2')}`,
      'bs=64k',
      'count=1',
      'conv=notrunc',
    ]);
    const took = Date.now() - start;
    d.child.kill('SIGCONT');
    closeSync(fd);
    t.not(w.code, 0, 'write to a stopped owner fails');
    t.match(w.stderr, /Input\/output error/);
    t.ok(
      took >= TIMEOUT_MS - 100 && took < 10 * TIMEOUT_MS,
      `EIO after ${took} ms (timeout ${TIMEOUT_MS})`,
    );
    t.match(a.stderr(), /disk2 on .*timed out/);
    t.ok(isMounted(mntA), 'the mount stays up');
    t.same(readdirSync(mntA).sort(), ['b', 'c', 'd', 'e'], 'and keeps answering');
  });

  t.test(
    'a killed daemon leaves a dead mount; a new daemon on the same directory clears it',
    async (t) => {
      a.child.kill('SIGKILL');
      await until(
        'daemon A is gone',
        () => a.child.exitCode !== null || a.child.signalCode !== null,
      );
      t.equal(
        errnoOf(() => statSync(mntA)),
        'ENOTCONN',
        'the dead mount answers ENOTCONN',
      );
      const again = await startMount(bins.fuse, mntA, treeA, opts);
      mounts.push(again);
      await until('the daemon says it cleared the dead mount', () =>
        /dead mount/.test(again.stderr()),
      );
      t.pass('dead mount detached');
      t.equal(statSync(join(mntA, 'b', 'disk0')).size, SIZE, 'the new mount serves');
    },
  );

  t.test('SIGTERM unmounts cleanly', async (t) => {
    await stopProcess(cm.child);
    t.equal(cm.child.exitCode, 0, `exit 0: ${cm.stderr()}`);
    t.notOk(isMounted(mntC), 'unmounted');
  });
});
