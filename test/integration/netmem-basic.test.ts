/**
 * native/netmem, the C client library, against three page servers on loopback
 * serving adjacent 16 MiB ranges: the C test program (native/netmem/test) writes
 * and reads across the ranges, runs 4 threads of FETCH_ADD64, checks unmapped
 * addresses; then a page server killed (or stopped) under a connected client
 * gives a clear error within the timeout instead of a hang.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const NATIVE = join(ROOT, 'native');
const PAGESERVER = join(NATIVE, 'build', 'pageserver');
const NETMEM_TEST = join(NATIVE, 'build', 'test', 'netmem_test');
const BASE = 0x4000_0000; // 1 GiB, 2 MiB-aligned
const SIZE = 16 * 1024 * 1024;
const TIMEOUT_MS = 1500;

execFileSync('make', ['-C', NATIVE, 'netmem-test'], { stdio: 'ignore' });

interface Server {
  child: ChildProcess;
  port: number;
  start: number;
}

function startServer(start: number): Promise<Server> {
  const child = spawn(
    PAGESERVER,
    [
      '--plaintext-loopback',
      '--listen',
      '127.0.0.1:0',
      '--range-start',
      `0x${start.toString(16)}`,
      '--range-size',
      String(SIZE),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.once('line', (line) => {
      const m = /^listening 127\.0\.0\.1:(\d+)$/.exec(line);
      if (!m?.[1]) reject(new Error(`unexpected first line: ${line}`));
      else resolve({ child, port: Number(m[1]), start });
    });
    child.once('exit', (code) => reject(new Error(`pageserver exited ${code}`)));
  });
}

function routeArgs(servers: Server[]): string[] {
  return servers.flatMap((s) => ['--route', `0x${s.start.toString(16)}:16M@127.0.0.1:${s.port}`]);
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}

/** Run the test program to completion; collect stdout lines and the exit code. */
function runProgram(
  args: string[],
  children: ChildProcess[],
  onReady?: (child: ChildProcess) => Promise<void>,
): Promise<{ code: number | null; lines: string[]; stderr: string; ms: number }> {
  const t0 = Date.now();
  const child = spawn(NETMEM_TEST, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  const lines: string[] = [];
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  rl.on('line', (line) => {
    lines.push(line);
    if (line === 'ready' && onReady) {
      onReady(child).then(
        () => child.stdin?.write('go\n'),
        () => child.kill('SIGKILL'),
      );
    }
  });
  // never hang the suite: the program gets 60 s at most
  const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve) => {
    child.once('close', (code) => {
      clearTimeout(guard);
      resolve({ code, lines, stderr, ms: Date.now() - t0 });
    });
  });
}

function readLine(lines: string[], addr: number): string | undefined {
  return lines.find((l) => l.startsWith(`read 0x${addr.toString(16)} `));
}

function elapsedMs(line: string | undefined): number {
  const m = / after (\d+) ms$/.exec(line ?? '');
  return m?.[1] ? Number(m[1]) : Number.NaN;
}

t.test('netmem against three page servers', async (t) => {
  const children: ChildProcess[] = [];
  t.teardown(async () => {
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      await exited(c);
    }
  });
  const servers: Server[] = [];
  for (let i = 0; i < 3; i++) {
    const s = await startServer(BASE + i * SIZE);
    children.push(s.child);
    servers.push(s);
  }
  const routes = routeArgs(servers);

  await t.test('40 MiB across all ranges, unaligned boundaries, atomics, unmapped', async (t) => {
    const r = await runProgram([...routes, 'basic'], children);
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
    const victim = servers[2] as Server;
    const s0 = BASE;
    const s2 = BASE + 2 * SIZE;
    const boundary = BASE + 2 * SIZE - 4096; // crosses from range 2 into range 3
    const r = await runProgram(
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
    t.match(dead, /error ECONNRESET \(-104\)/, 'the dropped connection: ECONNRESET');
    t.ok(elapsedMs(dead) < TIMEOUT_MS, `within the timeout (${elapsedMs(dead)} ms)`);
    t.match(readLine(r.lines, s0), / ok$/, 'a live range still reads');
    const across = readLine(r.lines, boundary);
    t.match(across, /error ECONNREFUSED \(-111\)/, 'reconnecting to the dead server: refused');
    t.ok(elapsedMs(across) < TIMEOUT_MS, 'refused within the timeout');
  });

  await t.test('a stopped (unresponsive) page server: ETIMEDOUT, no hang', async (t) => {
    const victim = servers[1] as Server;
    const s0 = BASE;
    const s1 = BASE + SIZE;
    const r = await runProgram(
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
