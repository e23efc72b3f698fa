/**
 * The native page server on loopback, driven through the TypeScript client:
 * range boundaries, error statuses, pipelining, atomics from several
 * connections, malformed input, STAT counters, and the plaintext guard.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { WireStatus } from '../../services/api/wire.ts';
import { PageServerClient, PageServerError } from '../../services/client/pageserver-client.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BINARY = join(ROOT, 'native', 'build', 'pageserver');
const START = 0x4000_0000n; // 1 GiB: 2 MiB-aligned
const SIZE = 64n * 1024n * 1024n;
const END = START + SIZE;

if (!existsSync(BINARY)) execFileSync('make', ['-C', join(ROOT, 'native')], { stdio: 'ignore' });

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

function expectStatus(t: Test, p: Promise<unknown>, status: number, what: string) {
  return p.then(
    () => t.fail(`${what}: expected status ${status}, got success`),
    (e: unknown) => {
      t.ok(e instanceof PageServerError, `${what}: a PageServerError`);
      t.equal((e as PageServerError).status, status, what);
    },
  );
}

t.test(
  'refuses to start without --plaintext-loopback, and on a non-loopback address',
  async (t) => {
    const run = (args: string[]) => {
      try {
        execFileSync(BINARY, args, { stdio: 'pipe' });
        return { code: 0, stderr: '' };
      } catch (e) {
        const err = e as { status: number; stderr: Buffer };
        return { code: err.status, stderr: err.stderr.toString() };
      }
    };
    const base = ['--listen', '127.0.0.1:0', '--range-start', '0', '--range-size', '1M'];
    const noFlag = run(base);
    t.not(noFlag.code, 0);
    t.match(noFlag.stderr, /--plaintext-loopback/);
    t.match(noFlag.stderr, /TLS/);
    const wide = run([
      '--plaintext-loopback',
      '--listen',
      '0.0.0.0:0',
      '--range-start',
      '0',
      '--range-size',
      '1M',
    ]);
    t.not(wide.code, 0);
    t.match(wide.stderr, /not a loopback address/);
  },
);

t.test('page server', async (t) => {
  const { child, port } = await startServer([
    '--plaintext-loopback',
    '--listen',
    '127.0.0.1:0',
    '--range-start',
    `0x${START.toString(16)}`,
    '--range-size',
    SIZE.toString(),
  ]);
  const clients: PageServerClient[] = [];
  const connect = async () => {
    const c = await PageServerClient.connect('127.0.0.1', port);
    clients.push(c);
    return c;
  };
  t.teardown(async () => {
    for (const c of clients) await c.close().catch(() => {});
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  });
  const c = await connect();

  await t.test('write then read back at the range boundaries', async (t) => {
    const first = Buffer.from('first bytes of the range');
    const last = Buffer.from('last bytes of the range!');
    await c.write(START, first);
    await c.write(END - BigInt(last.length), last);
    t.same(await c.read(START, first.length), first);
    t.same(await c.read(END - BigInt(last.length), last.length), last);
    const big = Buffer.alloc(1 << 20, 0xab);
    await c.write(START + 4096n, big);
    t.same(await c.read(START + 4096n, big.length), big, 'a full 1 MiB payload round-trips');
    t.equal((await c.read(END, 0)).length, 0, 'a zero-length read at the end is empty');
  });

  await t.test('addresses outside the range get E_OUT_OF_RANGE', async (t) => {
    await expectStatus(t, c.read(END - 8n, 16), WireStatus.E_OUT_OF_RANGE, 'read crossing end');
    await expectStatus(t, c.read(START - 1n, 1), WireStatus.E_OUT_OF_RANGE, 'below the start');
    await expectStatus(t, c.write(END, Buffer.alloc(1)), WireStatus.E_OUT_OF_RANGE, 'at end');
    await expectStatus(
      t,
      c.read(0xffff_ffff_ffff_fff0n, 32),
      WireStatus.E_OUT_OF_RANGE,
      'wrapping address',
    );
    await expectStatus(t, c.fetchAdd64(END, 1n), WireStatus.E_OUT_OF_RANGE, 'atomic past end');
    await expectStatus(t, c.fetchAdd64(START + 4n, 1n), WireStatus.E_UNALIGNED, 'unaligned');
  });

  await t.test('oversized lengths get E_TOO_LARGE and the connection goes on', async (t) => {
    await expectStatus(t, c.read(START, (1 << 20) + 1), WireStatus.E_TOO_LARGE, 'big read');
    await expectStatus(
      t,
      c.write(START, Buffer.alloc((1 << 20) + 1, 1)),
      WireStatus.E_TOO_LARGE,
      'big write (payload skipped)',
    );
    t.same(await c.read(START, 5), Buffer.from('first'), 'same connection still serves');
    t.equal(child.exitCode, null, 'server alive');
  });

  await t.test('1,000 pipelined requests on one connection answer in order', async (t) => {
    const order: number[] = [];
    const all: Promise<unknown>[] = [];
    for (let i = 0; i < 1000; i++) {
      const addr = START + 8192n + BigInt(i) * 8n;
      // write() and read() are async functions with one await each: same tick depth
      const p: Promise<unknown> =
        i % 2 === 0
          ? c.write(addr, Buffer.from(new BigUint64Array([BigInt(i)]).buffer))
          : c.read(addr - 8n, 8);
      all.push(
        p.then((b) => {
          order.push(i);
          if (Buffer.isBuffer(b))
            t.equal(b.readBigUInt64LE(0), BigInt(i - 1), `read ${i} sees write ${i - 1}`);
        }),
      );
    }
    await Promise.all(all);
    t.same(
      order,
      Array.from({ length: 1000 }, (_, i) => i),
    );
  });

  await t.test('CAS64 from 4 connections: 2,000 increments end at 2,000', async (t) => {
    const word = START + 0x30_0000n; // clear of the 1 MiB written above
    const conns = await Promise.all([connect(), connect(), connect(), connect()]);
    let failedCas = 0;
    await Promise.all(
      conns.map(async (k) => {
        for (let n = 0; n < 500; n++) {
          let seen = (await k.read(word, 8)).readBigUInt64LE(0);
          for (;;) {
            const r = await k.cas64(word, seen, seen + 1n);
            if (r.swapped) break;
            failedCas++;
            seen = r.old;
          }
        }
      }),
    );
    t.equal((await c.read(word, 8)).readBigUInt64LE(0), 2000n);
    t.comment(`CAS retries: ${failedCas}`);
  });

  await t.test('FETCH_ADD64 from 4 connections: 2,000 adds end at 2,000', async (t) => {
    const word = START + 0x30_0008n;
    const conns = await Promise.all([connect(), connect(), connect(), connect()]);
    const olds: bigint[] = [];
    await Promise.all(
      conns.map(async (k) => {
        const mine = [];
        for (let n = 0; n < 500; n++) mine.push(k.fetchAdd64(word, 1n));
        olds.push(...(await Promise.all(mine)));
      }),
    );
    t.equal((await c.read(word, 8)).readBigUInt64LE(0), 2000n);
    t.equal(new Set(olds).size, 2000, 'every old value seen once');
  });

  await t.test('a garbage header closes that connection; others still served', async (t) => {
    const bad = await connect();
    bad.sendRaw(Buffer.alloc(32, 0x5a));
    await bad.closed();
    t.pass('server closed the connection');
    const fresh = await connect();
    t.same(await fresh.read(START, 5), Buffer.from('first'));
    t.same(await c.read(START, 5), Buffer.from('first'));
    t.equal(child.exitCode, null, 'server alive');
  });

  await t.test('STAT counters match what was done', async (t) => {
    const k = await connect();
    const before = await k.stat();
    await k.write(START + 0x20_0000n, Buffer.alloc(100, 1));
    await k.read(START + 0x20_0000n, 40);
    await k.cas64(START + 0x20_0000n, 0n, 1n);
    await k.fetchAdd64(START + 0x20_0008n, 3n);
    await expectStatus(t, k.read(END, 1), WireStatus.E_OUT_OF_RANGE, 'one error');
    const after = await k.stat();
    t.equal(after.requestsWrite - before.requestsWrite, 1n);
    t.equal(after.requestsRead - before.requestsRead, 2n);
    t.equal(after.requestsCas64 - before.requestsCas64, 1n);
    t.equal(after.requestsFetchAdd64 - before.requestsFetchAdd64, 1n);
    t.equal(after.requestsStat - before.requestsStat, 1n);
    t.equal(after.bytesWritten - before.bytesWritten, 100n);
    t.equal(after.bytesRead - before.bytesRead, 40n);
    t.equal(after.errors - before.errors, 1n);
    t.ok(before.requestsInvalid >= 1n, 'the garbage header was counted');
    t.equal(after.rangeStart, START);
    t.equal(after.rangeSize, SIZE);
    t.equal(after.connectionsAccepted, BigInt(clients.length));
    t.ok(after.connectionsOpen >= 1n && after.connectionsOpen <= BigInt(clients.length));
  });
});
