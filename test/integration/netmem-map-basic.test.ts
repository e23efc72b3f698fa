/**
 * netmem_map (native/netmem/netmem_map.c) against three page servers on
 * loopback serving adjacent 16 MiB ranges: the C test program checks faults,
 * read-ahead, write-back and locks; netmem-run gives an unmodified program the
 * same checksum as a local copy; three processes increment one counter under
 * netmem_lock; an owner that is killed or stopped under a mapped reader gives
 * SIGBUS and a log line within the timeout, never a hang.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import {
  buildNetmem,
  exited,
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
const TIMEOUT_MS = 1500;

buildNetmem();

const children = killedAtTeardown(t);
const dir = await mkdtemp(join(tmpdir(), 'amalgam-netmem-map-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

const servers: PageServer[] = [];
for (let i = 0; i < 3; i++) {
  const s = await startPageServer(BASE + i * SIZE, SIZE);
  children.push(s.child);
  servers.push(s);
}
const env = (list: PageServer[] = servers) => ({
  NETMEM_ROUTES: list.map((s) => s.route).join(','),
  NETMEM_TIMEOUT_MS: String(TIMEOUT_MS),
});
const hex = (n: number) => `0x${n.toString(16)}`;

t.test('faults, read-ahead, write-back, word diffs, lock, unmapped', async (t) => {
  // 8 MiB straddling the first two ranges
  const r = await runProgram(
    MAP_TEST,
    ['basic', hex(BASE + SIZE - 4 * 1024 * 1024), String(8 << 20)],
    {
      env: { ...env(), NETMEM_FLUSH_MS: '200', NETMEM_LOCK_TTL_S: '2' },
      children,
    },
  );
  t.equal(r.code, 0, `exit status 0 (stderr: ${r.stderr})`);
  for (const check of [
    'map',
    'random-touch',
    'one-page-per-random-fault',
    'whole-region',
    'read-ahead',
    'sync-visible',
    'word-diff',
    'flusher',
    'stale-before-lock',
    'fresh-after-lock',
    'lock-word',
    'lease-renewed',
    'unlock-wrote-back',
    'unlock-again',
    'unmap-wrote-back',
    'extents-read',
    'extents-global',
    'extents-write-back',
    'unmapped',
    'fixed-read',
  ]) {
    t.ok(r.lines.includes(`ok ${check}`), `ok ${check}`);
  }
  t.notOk(
    r.lines.some((l) => l.startsWith('FAIL')),
    r.lines.filter((l) => l.startsWith('FAIL')).join('; '),
  );
  t.match(
    r.stderr,
    /cannot map 0x1000\+4096: no node owns all of it/,
    'the unmapped address is logged',
  );
});

t.test('4 threads writing shared pages while the flusher writes back: nothing lost', async (t) => {
  const r = await runProgram(MAP_TEST, ['stress', hex(BASE + 2 * SIZE), String(4 << 20)], {
    env: { ...env(), NETMEM_FLUSH_MS: '2' },
    children,
  });
  t.equal(r.code, 0, `exit status 0 (stderr: ${r.stderr})`);
  t.ok(r.lines.includes('ok stress'), r.lines.join('; '));
  const info = /wp_faults (\d+) pages_written_back (\d+)/.exec(r.lines.join('\n'));
  t.ok(Number(info?.[2]) > 1024, `write-backs raced the writers (${info?.[0]})`);
});

t.test('netmem-run: an unmodified program sums a remote array like a local copy', async (t) => {
  const length = 40 * 1024 * 1024; // across all three ranges
  const data = Buffer.alloc(length);
  let x = 12345;
  for (let i = 0; i < length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    data.writeUInt32LE(x >>> 0, i);
  }
  const file = join(dir, 'array.bin');
  await writeFile(file, data);
  const at = BASE + 4096;
  const local = await runProgram(SUM_ARRAY, [file], { children });
  t.equal(local.code, 0, local.stderr);
  t.match(local.lines[0], /^sum [0-9a-f]{16} hash [0-9a-f]{16} bytes 41943040$/);

  for (const how of ['written with netmem_write', 'written through a mapping']) {
    const put = await runProgram(
      MAP_TEST,
      ['put', hex(at), file, ...(how.includes('mapping') ? ['mapped'] : [])],
      { env: env(), children },
    );
    t.equal(put.code, 0, `put: ${put.stderr}`);
    // wipe nothing: a second put of the same bytes must still read back the same
    const remote = await runProgram(
      NETMEM_RUN,
      ['--map', `${hex(at)}:${length}`, '--', SUM_ARRAY],
      {
        env: env(),
        children,
      },
    );
    t.equal(remote.code, 0, `netmem-run exit 0 (stderr: ${remote.stderr})`);
    t.equal(remote.lines[0], local.lines[0], `${how}: the same checksum as the local copy`);
  }

  const unowned = await runProgram(NETMEM_RUN, ['--map', '0x1000:4096', '--', SUM_ARRAY], {
    env: env(),
    children,
  });
  t.equal(unowned.code, 127, 'an address no node owns: netmem-run exits 127 before main');
  t.match(unowned.stderr, /cannot map 0x1000:4096: Bad address/);
});

t.test('3 processes x 2,000 increments under netmem_lock end at exactly 6,000', async (t) => {
  const page = BASE + 3 * SIZE - 64 * 4096; // nothing else wrote here
  const before = await runProgram(MAP_TEST, ['peek', hex(page + 64)], { env: env(), children });
  t.equal(before.lines[0], 'u64 0', 'the counter starts at 0');
  const runs = await Promise.all(
    [0, 1, 2].map(() =>
      runProgram(MAP_TEST, ['counter', hex(page), '2000'], { env: env(), children }),
    ),
  );
  for (const r of runs) t.equal(r.code, 0, `counter exit 0 (stderr: ${r.stderr})`);
  const check = await runProgram(MAP_TEST, ['peek', hex(page + 64)], { env: env(), children });
  t.equal(check.lines[0], 'u64 6000', 'the counter');
  const word = await runProgram(MAP_TEST, ['peek', hex(page)], { env: env(), children });
  t.equal(word.lines[0], 'u64 0', 'the lock word is free at the end');
});

t.test('an owner killed under a mapped reader: SIGBUS and a log line, not a hang', async (t) => {
  const victim = servers[1] as PageServer;
  const r = await runProgram(MAP_TEST, ['wait-scan', hex(victim.start), String(SIZE)], {
    env: env(),
    children,
    onReady: async () => {
      victim.child.kill('SIGKILL');
      await exited(victim.child);
    },
    guardMs: 60_000,
  });
  t.equal(r.signal, 'SIGBUS', `killed by SIGBUS (code ${r.code}, stderr: ${r.stderr})`);
  t.match(
    r.stderr,
    new RegExp(
      `netmem: page ${hex(victim.start + 4096)} .* could not be fetched from 127\\.0\\.0\\.1:${victim.port}: (ECONNRESET|ECONNREFUSED).*SIGBUS`,
    ),
    'the log line names the page, the owner and the error',
  );
  t.ok(r.msAfterGo < TIMEOUT_MS + 1000, `within the timeout (${r.msAfterGo} ms after the kill)`);
});

t.test('an owner that stops answering: SIGBUS after the timeout, not a hang', async (t) => {
  const victim = servers[2] as PageServer;
  const r = await runProgram(MAP_TEST, ['wait-scan', hex(victim.start), String(SIZE)], {
    env: env([servers[0] as PageServer, victim]),
    children,
    onReady: async () => {
      victim.child.kill('SIGSTOP');
    },
    guardMs: 60_000,
  });
  victim.child.kill('SIGKILL');
  t.equal(r.signal, 'SIGBUS', `killed by SIGBUS (code ${r.code}, stderr: ${r.stderr})`);
  t.match(
    r.stderr,
    /ETIMEDOUT \(owner did not answer within the timeout\); the access gets SIGBUS/,
  );
  t.ok(
    r.msAfterGo >= TIMEOUT_MS - 50 && r.msAfterGo < TIMEOUT_MS + 3000,
    `after about the timeout (${r.msAfterGo} ms)`,
  );
});
