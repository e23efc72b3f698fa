/**
 * native/netmem, the C client library, against three page servers on loopback
 * serving adjacent 16 MiB ranges: the C test program (native/netmem/test) writes
 * and reads across the ranges, runs 4 threads of FETCH_ADD64, checks unmapped
 * addresses; then a page server killed (or stopped) under a connected client
 * gives a clear error within the timeout instead of a hang.
 */
import type { ChildProcess } from 'node:child_process';
import t from 'tap';
import {
  buildNetmem,
  exited,
  killedAtTeardown,
  NETMEM_TEST,
  type PageServer,
  runProgram,
  startPageServer,
} from './netmem-map-fixtures.ts';

const BASE = 0x4000_0000; // 1 GiB, 2 MiB-aligned
const SIZE = 16 * 1024 * 1024;
const TIMEOUT_MS = 1500;

buildNetmem(['netmem-test']);

function routeArgs(servers: PageServer[]): string[] {
  return servers.flatMap((s) => [
    '--route',
    `0x${s.start.toString(16)}:16M=local@127.0.0.1:${s.port}`,
  ]);
}

/** The test program to completion (60 s at most); its stdout lines and exit code. */
function runNetmemTest(args: string[], children: ChildProcess[], onReady?: () => Promise<void>) {
  return runProgram(NETMEM_TEST, args, { children, onReady, guardMs: 60_000 });
}

function readLine(lines: string[], addr: number): string | undefined {
  return lines.find((l) => l.startsWith(`read 0x${addr.toString(16)} `));
}

function elapsedMs(line: string | undefined): number {
  const m = / after (\d+) ms$/.exec(line ?? '');
  return m?.[1] ? Number(m[1]) : Number.NaN;
}

t.test('netmem against three page servers', async (t) => {
  const children = killedAtTeardown(t);
  const servers: PageServer[] = [];
  for (let i = 0; i < 3; i++) {
    const s = await startPageServer(BASE + i * SIZE, SIZE);
    children.push(s.child);
    servers.push(s);
  }
  const routes = routeArgs(servers);

  await t.test('40 MiB across all ranges, unaligned boundaries, atomics, unmapped', async (t) => {
    const r = await runNetmemTest([...routes, 'basic'], children);
    t.equal(r.code, 0, `exit status 0 (stderr: ${r.stderr})`);
    for (const check of [
      'read-whole-space',
      'span-40MiB',
      'cross-boundary',
      'cas64',
      'fetch-add64',
      'unmapped',
      'after-errors',
    ]) {
      t.ok(r.lines.includes(`ok ${check}`), `ok ${check}`);
    }
    t.notOk(
      r.lines.some((l) => l.startsWith('FAIL')),
      r.lines.filter((l) => l.startsWith('FAIL')).join('; '),
    );
    t.ok(r.lines.includes('info fetch-add64 total 10000'), '4 threads x 2500 end at 10000');
  });

  await t.test('a killed page server: its reads fail fast, the others still work', async (t) => {
    const victim = servers[2] as PageServer;
    const s0 = BASE;
    const s2 = BASE + 2 * SIZE;
    const boundary = BASE + 2 * SIZE - 4096; // crosses from range 2 into range 3
    const r = await runNetmemTest(
      [
        '--timeout-ms',
        String(TIMEOUT_MS),
        ...routes,
        'wait-read',
        `0x${s2.toString(16)}`,
        '65536',
        `0x${s0.toString(16)}`,
        '65536',
        `0x${boundary.toString(16)}`,
        '8192',
      ],
      children,
      async () => {
        victim.child.kill('SIGKILL');
        await exited(victim.child);
      },
    );
    t.equal(r.code, 0, `exit status 0 (stderr: ${r.stderr})`);
    const dead = readLine(r.lines, s2);
    // ECONNRESET when the read meets the dropped connection; ECONNREFUSED when netmem
    // already saw it closed (it checks a pooled connection before a call) and redialled.
    t.match(
      dead,
      /error (ECONNRESET \(-104\)|ECONNREFUSED \(-111\))/,
      'the dropped connection: reset, or refused on the redial',
    );
    t.ok(elapsedMs(dead) < TIMEOUT_MS, `within the timeout (${elapsedMs(dead)} ms)`);
    t.match(readLine(r.lines, s0), / ok$/, 'a live range still reads');
    const across = readLine(r.lines, boundary);
    t.match(across, /error ECONNREFUSED \(-111\)/, 'reconnecting to the dead server: refused');
    t.ok(elapsedMs(across) < TIMEOUT_MS, 'refused within the timeout');
  });

  await t.test('a stopped (unresponsive) page server: ETIMEDOUT, no hang', async (t) => {
    const victim = servers[1] as PageServer;
    const s0 = BASE;
    const s1 = BASE + SIZE;
    const r = await runNetmemTest(
      [
        '--timeout-ms',
        String(TIMEOUT_MS),
        ...routes.slice(0, 4), // the first two routes (the third server is gone)
        'wait-read',
        `0x${s1.toString(16)}`,
        String(4 * 1024 * 1024),
        `0x${s0.toString(16)}`,
        '65536',
      ],
      children,
      async () => {
        victim.child.kill('SIGSTOP');
      },
    );
    victim.child.kill('SIGKILL');
    t.equal(r.code, 0, `exit status 0 (stderr: ${r.stderr})`);
    const stuck = readLine(r.lines, s1);
    t.match(stuck, /error ETIMEDOUT \(-110\)/, 'ETIMEDOUT');
    const ms = elapsedMs(stuck);
    t.ok(ms >= TIMEOUT_MS - 50 && ms < TIMEOUT_MS + 2000, `after about the timeout (${ms} ms)`);
    t.match(readLine(r.lines, s0), / ok$/, 'a live range still reads');
  });
});
