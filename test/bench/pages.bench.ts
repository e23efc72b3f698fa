/**
 * npm run bench:pages — the native page server against its peers, on
 * loopback, all measured in the same run:
 *
 * - 4 KiB random reads and writes (50/50) at 1 and 50 connections, each
 *   connection a closed loop (one request in flight), for the page server in
 *   plaintext (--plaintext-loopback) and with mutual TLS (node certificates
 *   from the PKI library), Redis (GET/SET of 4096-byte values, a minimal RESP
 *   client over `net` written here: no pipelining, same closed loop) and a
 *   4 KiB TCP echo (test/bench/pages/peer.c, C + epoll: the ceiling).
 * - Bulk: 256 MiB read from the page server in 1 MiB reads pipelined on one
 *   plaintext connection (3 in flight, under the server's 4 MiB output
 *   window), against a C server that writes 256 MiB to a plain socket.
 *
 * Every client is the same Node process (the shipped PageServerClient for the
 * page server), so the load generator's cost is the same for all systems.
 * Every child runs under setpriv --pdeathsig and is killed on exit.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import {
  HEADER_SIZE,
  Opcode,
  PageServerClient,
  type PageServerConnectOptions,
  WIRE_MAGIC,
  WIRE_VERSION,
} from '../../services/client/pageserver-client.ts';
import {
  createClusterCa,
  createKeyAndCsr,
  signCsr,
} from '../../services/controlplane/pki/index.ts';
import {
  findSetpriv,
  freePorts,
  installHandlers,
  isAlive,
  ownedGroups,
  type Tracked,
  uninstallHandlers,
} from '../harness/processes.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const BULK_ROUNDS = Number(process.env.BENCH_BULK_ROUNDS ?? 3);
const CONCURRENCY = [1, 50];
const PAGE = 4096;
/** Random ops touch this many 4 KiB pages (64 MiB; Redis is prefilled with as many keys). */
const PAGES = Number(process.env.BENCH_PAGES ?? 16384);
const BULK_BYTES = 256 * 1024 * 1024;
const BULK_CHUNK = 1024 * 1024;
const BULK_WINDOW = 3;
const RANGE_START = 0x4000_0000n;
const RANGE_SIZE = BULK_BYTES; // covers the random pages and the bulk read

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const NATIVE = join(ROOT, 'native');
const PAGESERVER = join(NATIVE, 'build', 'pageserver');
const PEER_SOURCE = join(dirname(fileURLToPath(import.meta.url)), 'pages', 'peer.c');

interface Measured {
  opsPerSec: number;
  p50: number; // microseconds
  p99: number;
  ops: number;
}

/** One connection of one system: do one 4 KiB op (read or write), resolve when answered. */
interface Conn {
  op(write: boolean, page: number): Promise<unknown>;
  close(): Promise<void> | void;
}

interface System {
  name: string;
  open(): Promise<Conn>;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function measure(system: System, concurrency: number): Promise<Measured> {
  const conns = await Promise.all(Array.from({ length: concurrency }, () => system.open()));
  try {
    // A short warm-up so connection setup and JIT are not in the figures.
    const warmUntil = performance.now() + 200;
    await Promise.all(
      conns.map(async (c) => {
        while (performance.now() < warmUntil) {
          await c.op(Math.random() < 0.5, Math.floor(Math.random() * PAGES));
        }
      }),
    );
    const latencies: number[] = [];
    const started = performance.now();
    const endAt = started + SECONDS * 1000;
    await Promise.all(
      conns.map(async (c) => {
        while (performance.now() < endAt) {
          const write = Math.random() < 0.5;
          const page = Math.floor(Math.random() * PAGES);
          const t0 = performance.now();
          await c.op(write, page);
          latencies.push((performance.now() - t0) * 1000);
        }
      }),
    );
    const elapsed = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    return {
      opsPerSec: latencies.length / elapsed,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      ops: latencies.length,
    };
  } finally {
    await Promise.all(conns.map((c) => c.close()));
  }
}

// ---------------------------------------------------------------- systems

function pageServerSystem(
  name: string,
  port: number,
  options: PageServerConnectOptions,
  payload: Buffer,
): System {
  return {
    name,
    async open() {
      const c = await PageServerClient.connect('127.0.0.1', port, options);
      return {
        op: (write, page) => {
          const addr = RANGE_START + BigInt(page * PAGE);
          return write ? c.write(addr, payload) : c.read(addr, PAGE);
        },
        close: () => c.close(),
      };
    },
  };
}

function connectSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.off('error', reject);
      s.setNoDelay(true);
      resolve(s);
    });
    s.once('error', reject);
  });
}

function closeSocket(s: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (s.destroyed) return resolve();
    s.once('close', () => resolve());
    s.end();
  });
}

type RespReply = string | Buffer | null;

/**
 * The smallest RESP2 client that does the job: commands as arrays of bulk
 * strings, replies `+`, `-`, `:` and `$` (no arrays needed for GET/SET/PING),
 * answered in order. One command in flight per connection in this benchmark.
 */
class RespConnection {
  private buf: Buffer = Buffer.alloc(0);
  private readonly waiters: Array<{ resolve: (r: RespReply) => void; reject: (e: Error) => void }> =
    [];

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    const fail = (e: Error) => {
      for (const w of this.waiters.splice(0)) w.reject(e);
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('redis connection closed')));
  }

  static async connect(port: number): Promise<RespConnection> {
    return new RespConnection(await connectSocket(port));
  }

  command(args: Array<string | Buffer>): Promise<RespReply> {
    const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
    for (const a of args) {
      const b = typeof a === 'string' ? Buffer.from(a) : a;
      parts.push(Buffer.from(`$${b.length}\r\n`), b, CRLF);
    }
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.socket.write(Buffer.concat(parts));
    });
  }

  close(): Promise<void> {
    return closeSocket(this.socket);
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    for (;;) {
      const eol = this.buf.indexOf(CRLF);
      if (eol < 0) return;
      const kind = this.buf[0];
      const line = this.buf.toString('latin1', 1, eol);
      let reply: RespReply | Error;
      let consumed: number;
      if (kind === 0x24 /* $ */) {
        const len = Number(line);
        if (len < 0) {
          reply = null;
          consumed = eol + 2;
        } else {
          if (this.buf.length < eol + 2 + len + 2) return;
          reply = this.buf.subarray(eol + 2, eol + 2 + len);
          consumed = eol + 2 + len + 2;
        }
      } else if (kind === 0x2d /* - */) {
        reply = new Error(`redis: ${line}`);
        consumed = eol + 2;
      } else {
        reply = line;
        consumed = eol + 2;
      }
      this.buf = this.buf.subarray(consumed);
      const w = this.waiters.shift();
      if (!w) continue;
      if (reply instanceof Error) w.reject(reply);
      else w.resolve(reply);
    }
  }
}

const CRLF = Buffer.from('\r\n');

function redisSystem(port: number, payload: Buffer): System {
  return {
    name: 'redis',
    async open() {
      const c = await RespConnection.connect(port);
      return {
        op: async (write, page) => {
          if (write) return c.command(['SET', `p${page}`, payload]);
          const v = await c.command(['GET', `p${page}`]);
          if (!Buffer.isBuffer(v) || v.length !== PAGE) throw new Error('redis GET: bad value');
          return v;
        },
        close: () => c.close(),
      };
    },
  };
}

/** 4 KiB out, 4 KiB back: the request/response ceiling of a socket. */
function echoSystem(port: number, payload: Buffer): System {
  return {
    name: 'tcp_echo',
    async open() {
      const s = await connectSocket(port);
      let received = 0;
      const waiters: Array<() => void> = [];
      s.on('data', (chunk: Buffer) => {
        received += chunk.length;
        while (received >= PAGE && waiters.length > 0) {
          received -= PAGE;
          waiters.shift()?.();
        }
      });
      return {
        op: () =>
          new Promise<void>((resolve) => {
            waiters.push(resolve);
            s.write(payload);
          }),
        close: () => closeSocket(s),
      };
    },
  };
}

// ---------------------------------------------------------------- bulk

async function bulkPageServer(port: number): Promise<number> {
  const c = await PageServerClient.connect('127.0.0.1', port);
  try {
    const chunks = BULK_BYTES / BULK_CHUNK;
    let next = 0;
    let bytes = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: BULK_WINDOW }, async () => {
        while (next < chunks) {
          const i = next++;
          const b = await c.read(RANGE_START + BigInt(i * BULK_CHUNK), BULK_CHUNK);
          bytes += b.length;
        }
      }),
    );
    const secs = (performance.now() - t0) / 1000;
    if (bytes !== BULK_BYTES) throw new Error(`bulk read got ${bytes} bytes`);
    return BULK_BYTES / 1e6 / secs;
  } finally {
    await c.close();
  }
}

/**
 * The same bulk read with a lean reader of the wire protocol (no
 * PageServerClient): each response's payload is copied once into a
 * preallocated 1 MiB buffer. Separates the server's cost from the client's.
 */
async function bulkRawWire(port: number): Promise<number> {
  const t0 = performance.now();
  const s = await connectSocket(port);
  const chunks = BULK_BYTES / BULK_CHUNK;
  const header = (i: number) => {
    const h = Buffer.alloc(HEADER_SIZE);
    h.writeUInt32LE(WIRE_MAGIC, 0);
    h.writeUInt8(WIRE_VERSION, 4);
    h.writeUInt8(Opcode.READ, 5);
    h.writeBigUInt64LE(BigInt(i + 1), 8);
    h.writeBigUInt64LE(RANGE_START + BigInt(i * BULK_CHUNK), 16);
    h.writeUInt32LE(BULK_CHUNK, 24);
    return h;
  };
  let sent = 0;
  let done = 0;
  let bytes = 0;
  const target = Buffer.alloc(BULK_CHUNK);
  let hdr = Buffer.alloc(0); // partial response header
  let payloadLeft = 0;
  let payloadOff = 0;
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.on('data', (chunk: Buffer) => {
      let off = 0;
      while (off < chunk.length) {
        if (payloadLeft === 0) {
          const need = HEADER_SIZE - hdr.length;
          hdr = Buffer.concat([hdr, chunk.subarray(off, off + need)]);
          off += Math.min(need, chunk.length - off);
          if (hdr.length < HEADER_SIZE) return;
          if (hdr.readUInt32LE(16) !== 0) return reject(new Error('bulk read: error status'));
          payloadLeft = hdr.readUInt32LE(20);
          payloadOff = 0;
          hdr = Buffer.alloc(0);
        }
        const n = Math.min(payloadLeft, chunk.length - off);
        chunk.copy(target, payloadOff, off, off + n);
        off += n;
        payloadOff += n;
        payloadLeft -= n;
        bytes += n;
        if (payloadLeft === 0) {
          done++;
          if (done === chunks) return resolve();
          if (sent < chunks) s.write(header(sent++));
        }
      }
    });
    while (sent < BULK_WINDOW) s.write(header(sent++));
  });
  const secs = (performance.now() - t0) / 1000;
  s.destroy();
  if (bytes !== BULK_BYTES) throw new Error(`raw bulk read got ${bytes} bytes`);
  return BULK_BYTES / 1e6 / secs;
}

async function bulkPlainSocket(port: number): Promise<number> {
  const t0 = performance.now();
  const s = await connectSocket(port);
  let bytes = 0;
  await new Promise<void>((resolve, reject) => {
    s.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    s.once('end', () => resolve());
    s.once('error', reject);
  });
  const secs = (performance.now() - t0) / 1000;
  s.destroy();
  if (bytes !== BULK_BYTES) throw new Error(`plain socket copy got ${bytes} bytes`);
  return BULK_BYTES / 1e6 / secs;
}

// ---------------------------------------------------------------- processes

function spawnOwned(group: Tracked, binary: string, args: string[]): ChildProcess {
  const setpriv = findSetpriv();
  // setpriv execs the binary in place: the pid is the binary's own, and it dies with us.
  const child = setpriv
    ? spawn(setpriv, ['--pdeathsig', 'KILL', '--', binary, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
      })
    : spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  group.children.add(child);
  return child;
}

/** Resolves with the port from the child's first stdout line `listening 127.0.0.1:PORT`. */
function listeningPort(child: ChildProcess, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.once('line', (line) => {
      const m = /^listening 127\.0\.0\.1:(\d+)$/.exec(line);
      if (!m?.[1]) reject(new Error(`${what}: unexpected first line: ${line}`));
      else resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`${what} exited ${code}: ${stderr.trim()}`)));
  });
}

async function waitForRedis(port: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (!isAlive(child)) throw new Error('redis-server exited at start');
    try {
      const c = await RespConnection.connect(port);
      const pong = await c.command(['PING']);
      await c.close();
      if (pong === 'PONG') return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error('redis-server did not answer PING within 10 s');
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function stopAll(group: Tracked): Promise<void> {
  await Promise.all(
    [...group.children].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (!isAlive(child)) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
          setTimeout(() => {
            if (isAlive(child)) child.kill('SIGKILL');
          }, 2000).unref();
        }),
    ),
  );
  group.children.clear();
  await rm(group.root, { recursive: true, force: true });
  ownedGroups.delete(group);
  uninstallHandlers();
}

function findRedisServer(): string | null {
  for (const p of ['/usr/bin/redis-server', '/usr/local/bin/redis-server']) {
    if (existsSync(p)) return p;
  }
  try {
    return (
      execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim() || null
    );
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const redisServer = findRedisServer();
  if (!redisServer) {
    console.error('bench:pages needs redis-server: apt-get install redis-server');
    process.exit(1);
  }
  const haveOpenssl = existsSync('/usr/include/openssl/ssl.h');
  if (
    !existsSync(PAGESERVER) ||
    (haveOpenssl && !existsSync(join(NATIVE, 'build', 'obj', '.mode-tls')))
  ) {
    process.stderr.write('building native/ (make -C native) ...\n');
    execFileSync('make', ['-C', NATIVE], { stdio: ['ignore', 'ignore', 'inherit'] });
  }

  const root = mkdtempSync(join(tmpdir(), 'amalgam-bench-pages-'));
  const group: Tracked = { root, children: new Set() };
  ownedGroups.add(group);
  installHandlers();
  try {
    const peer = join(root, 'peer');
    execFileSync('gcc', ['-O2', '-std=c11', PEER_SOURCE, '-o', peer], { stdio: 'inherit' });

    // Mutual TLS material: the server is node:a, the client node:b, both from one cluster CA.
    const ca = await createClusterCa({ commonName: 'amalgam-bench-ca' });
    const nodeCert = async (name: string) => {
      const commonName = `node:${name}`;
      const { keyPem, csrPem } = await createKeyAndCsr({ commonName, dnsNames: [name] });
      const cert = await signCsr(ca, csrPem, {
        commonName,
        organization: 'amalgam:nodes',
        dnsNames: [name],
        usages: ['client', 'server'],
        validityDays: 1,
      });
      return { cert, key: keyPem };
    };
    const serverId = await nodeCert('a');
    const clientId = await nodeCert('b');
    const file = (name: string, text: string) => {
      const p = join(root, name);
      writeFileSync(p, text, { mode: 0o600 });
      return p;
    };
    const rangeArgs = [
      '--listen',
      '127.0.0.1:0',
      '--range-start',
      `0x${RANGE_START.toString(16)}`,
      '--range-size',
      String(RANGE_SIZE),
    ];

    const plainChild = spawnOwned(group, PAGESERVER, ['--plaintext-loopback', ...rangeArgs]);
    const tlsChild = spawnOwned(group, PAGESERVER, [
      '--tls-cert',
      file('a.crt', serverId.cert),
      '--tls-key',
      file('a.key', serverId.key),
      '--tls-ca',
      file('ca.crt', ca.certPem),
      ...rangeArgs,
    ]);
    const echoChild = spawnOwned(group, peer, ['echo']);
    const sourceChild = spawnOwned(group, peer, ['source', String(BULK_BYTES)]);
    const [redisPort] = await freePorts(1);
    if (redisPort === undefined) throw new Error('no free port');
    const redisChild = spawnOwned(group, redisServer, [
      '--port',
      String(redisPort),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--daemonize',
      'no',
    ]);
    const [plainPort, tlsPort, echoPort, sourcePort] = await Promise.all([
      listeningPort(plainChild, 'pageserver (plaintext)'),
      listeningPort(tlsChild, 'pageserver (TLS)'),
      listeningPort(echoChild, 'echo peer'),
      listeningPort(sourceChild, 'source peer'),
    ]);
    await waitForRedis(redisPort, redisChild);
    const redisVersion = execFileSync(redisServer, ['--version'], { encoding: 'utf8' }).trim();

    const payload = Buffer.alloc(PAGE, 0xa5);
    // Redis and the page server hold the same data: every key/page written once up front.
    process.stderr.write(`prefilling ${PAGES} pages in Redis and the page servers ...\n`);
    const prefill = async (system: System) => {
      const conns = await Promise.all(Array.from({ length: 16 }, () => system.open()));
      let next = 0;
      await Promise.all(
        conns.map(async (c) => {
          while (next < PAGES) await c.op(true, next++);
        }),
      );
      await Promise.all(conns.map((c) => c.close()));
    };
    const tls = { ca: ca.certPem, ...clientId, node: 'a' };
    const systems: System[] = [
      pageServerSystem('pages_plain', plainPort, {}, payload),
      pageServerSystem('pages_tls', tlsPort, { tls }, payload),
      redisSystem(redisPort, payload),
      echoSystem(echoPort, payload),
    ];
    for (const s of systems.slice(0, 3)) await prefill(s);

    const best: Record<string, Measured> = {};
    for (const concurrency of CONCURRENCY) {
      for (let round = 1; round <= ROUNDS; round++) {
        for (const system of systems) {
          const m = await measure(system, concurrency);
          const id = `${system.name}_c${concurrency}`;
          process.stderr.write(
            `  round ${round} ${id}: ${m.opsPerSec.toFixed(0)} ops/s p50 ${m.p50.toFixed(0)} us\n`,
          );
          const prev = best[id];
          if (!prev || m.opsPerSec > prev.opsPerSec) best[id] = m;
        }
      }
    }

    let pagesBulk = 0;
    let rawBulk = 0;
    let plainBulk = 0;
    for (let round = 1; round <= BULK_ROUNDS; round++) {
      const p = await bulkPageServer(plainPort);
      const r = await bulkRawWire(plainPort);
      const s = await bulkPlainSocket(sourcePort);
      process.stderr.write(
        `  bulk round ${round}: page server ${p.toFixed(0)} MB/s (raw wire ${r.toFixed(0)}), plain socket ${s.toFixed(0)} MB/s\n`,
      );
      pagesBulk = Math.max(pagesBulk, p);
      rawBulk = Math.max(rawBulk, r);
      plainBulk = Math.max(plainBulk, s);
    }

    console.log(
      `\npages bench: 4 KiB random ops (50% reads, 50% writes over ${PAGES} pages), closed loop, ` +
        `best of ${ROUNDS} round(s) of ${SECONDS}s per cell; one Node client process for every system`,
    );
    console.log(
      `peers: ${redisVersion.split(' ').slice(0, 3).join(' ')} (minimal RESP client, no pipelining); tcp_echo = C epoll echo`,
    );
    console.table(
      Object.entries(best).map(([id, m]) => {
        const [system, clients] = id.split('_c');
        return {
          system,
          connections: Number(clients),
          'ops/s': Math.round(m.opsPerSec),
          'p50 us': Math.round(m.p50),
          'p99 us': Math.round(m.p99),
          ops: m.ops,
        };
      }),
    );
    console.table([
      {
        bulk: 'page server, 1 MiB reads x3 in flight, 1 conn',
        'MB/s': Math.round(pagesBulk),
      },
      { bulk: 'same, lean wire reader (no PageServerClient)', 'MB/s': Math.round(rawBulk) },
      { bulk: 'plain socket copy (C writer)', 'MB/s': Math.round(plainBulk) },
    ]);

    const get = (id: string) =>
      best[id] ?? { opsPerSec: Number.NaN, p50: Number.NaN, p99: Number.NaN, ops: 0 };
    const ratios = {
      pages_ops_vs_redis: round2(get('pages_plain_c50').opsPerSec / get('redis_c50').opsPerSec),
      pages_p50_vs_redis: round2(get('pages_plain_c1').p50 / get('redis_c1').p50),
      bulk_vs_plain_socket: round2(pagesBulk / plainBulk),
      bulk_raw_wire_vs_plain_socket: round2(rawBulk / plainBulk),
      tls_vs_plaintext: round2(get('pages_tls_c50').opsPerSec / get('pages_plain_c50').opsPerSec),
      pages_ops_vs_echo: round2(get('pages_plain_c50').opsPerSec / get('tcp_echo_c50').opsPerSec),
    };
    const verdict = (ok: boolean) => (ok ? 'MET' : 'SHORT');
    console.log('goals:');
    console.log(
      `  pages_ops_vs_redis   >= 1.5  -> ${ratios.pages_ops_vs_redis} ${verdict(ratios.pages_ops_vs_redis >= 1.5)}`,
    );
    console.log(
      `  pages_p50_vs_redis   <= 1.0  -> ${ratios.pages_p50_vs_redis} ${verdict(ratios.pages_p50_vs_redis <= 1)}`,
    );
    console.log(
      `  bulk_vs_plain_socket >= 0.7  -> ${ratios.bulk_vs_plain_socket} ${verdict(ratios.bulk_vs_plain_socket >= 0.7)}`,
    );
    console.log(
      `  (bulk with a lean wire reader instead of PageServerClient: ${ratios.bulk_raw_wire_vs_plain_socket})`,
    );
    console.log(`  tls_vs_plaintext (no goal)   -> ${ratios.tls_vs_plaintext}`);
    console.log(`  pages_ops_vs_echo (ceiling)  -> ${ratios.pages_ops_vs_echo}`);

    const results: Record<string, number> = {};
    for (const [id, m] of Object.entries(best)) {
      results[`${id}_ops_per_s`] = Math.round(m.opsPerSec);
      results[`${id}_p50_us`] = Math.round(m.p50);
      results[`${id}_p99_us`] = Math.round(m.p99);
    }
    results.pages_bulk_MBps = Math.round(pagesBulk);
    results.pages_bulk_raw_wire_MBps = Math.round(rawBulk);
    results.plain_socket_bulk_MBps = Math.round(plainBulk);
    console.log(JSON.stringify({ bench: 'pages', results, ratios }));
  } finally {
    await stopAll(group);
  }
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

await main();
