/**
 * bench:dev - the network device space's data path, in one run on loopback:
 * sequential (1 MiB) and 4 KiB random reads and writes of one image file
 *   - through a remotedev-fuse mount (page server --devices, plaintext loopback),
 *   - from nbd-server (Debian) serving the same image, read with devbench's own
 *     minimal NBD client (newstyle fixed handshake; the nbd kernel module is not
 *     needed),
 *   - from the image read locally (the ceiling),
 *   - and, for reference, the page server's device requests without FUSE.
 * Every target is driven by the same C loop (native/build/devbench, queue
 * depth 1). Each measurement runs ROUNDS times, interleaved; the median counts.
 * The last line is the JSON object with ratio fuse_vs_nbd (throughput, the
 * geometric mean over the four workloads; goal >= 1), the per-workload
 * throughput ratios, and fuse_vs_nbd_p50_* (nbd's median op time over FUSE's:
 * the same comparison at the median, which stalls of a busy machine move less).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Mount,
  type PageServer,
  remotedevBinaries,
  startMount,
  startPageServer,
  stopMount,
  stopProcess,
} from '../integration/remotedev-fixtures.ts';

const MiB = 1024 * 1024;
const IMAGE_MB = Number(process.env.DEV_BENCH_IMAGE_MB ?? 256);
const RANDOM_OPS = Number(process.env.DEV_BENCH_RANDOM_OPS ?? 5000);
const ROUNDS = Number(process.env.DEV_BENCH_ROUNDS ?? 3);

interface Result {
  mb_s: number;
  iops: number;
  p50_us: number;
  p99_us: number;
}

const WORKLOADS = [
  { name: 'seq_read', op: 'seqread', bs: MiB, ops: IMAGE_MB },
  { name: 'seq_write', op: 'seqwrite', bs: MiB, ops: IMAGE_MB },
  { name: 'rand_read_4k', op: 'randread', bs: 4096, ops: RANDOM_OPS },
  { name: 'rand_write_4k', op: 'randwrite', bs: 4096, ops: RANDOM_OPS },
] as const;

function onPath(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function ensureNbdServer(): void {
  if (onPath('nbd-server')) return;
  console.error('bench:dev: installing nbd-server (apt-get install -y nbd-server) ...');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['install', '-y', '-qq', 'nbd-server'], { stdio: 'inherit', env });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function devbench(bin: string, target: string[], op: string, bs: number, ops: number): Result {
  const out = execFileSync(bin, [...target, '--op', op, '--bs', String(bs), '--ops', String(ops)], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  return JSON.parse(out.trim().split('\n').at(-1) as string) as Result;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

async function main(): Promise<void> {
  const bins = remotedevBinaries();
  ensureNbdServer();
  const dir = mkdtempSync(join(tmpdir(), `bench-dev-${process.pid}-`));
  const img = join(dir, 'disk0.img');
  let server: PageServer | undefined;
  let mount: Mount | undefined;
  let nbdPidFile: string | undefined;
  const cleanup = async () => {
    if (mount) await stopMount(mount);
    if (server) await stopProcess(server.child);
    if (nbdPidFile) {
      try {
        process.kill(Number(readFileSync(nbdPidFile, 'utf8').trim()), 'SIGTERM');
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => {
    void cleanup().then(() => process.exit(130));
  });
  try {
    // The image, filled with random bytes (not sparse) and so in the page cache for everyone.
    const fd = openSync(img, 'w');
    const chunk = Buffer.alloc(4 * MiB);
    for (let off = 0; off < IMAGE_MB * MiB; off += chunk.length) {
      randomFillSync(chunk);
      writeSync(fd, chunk, 0, chunk.length, off);
    }
    closeSync(fd);

    const devices = join(dir, 'devices');
    writeFileSync(devices, `disk0 rw ${img}\n`);
    server = await startPageServer(bins.pageserver, devices);
    const tree = join(dir, 'tree');
    writeFileSync(tree, `bench disk0 ${IMAGE_MB * MiB} rw ${server.address} plain\n`);
    const mnt = join(dir, 'mnt');
    mkdirSync(mnt);
    mount = await startMount(bins.fuse, mnt, tree);

    const nbdPort = await freePort();
    const conf = join(dir, 'nbd.conf');
    nbdPidFile = join(dir, 'nbd.pid');
    writeFileSync(
      conf,
      `[generic]\n    listenaddr = 127.0.0.1\n    port = ${nbdPort}\n[bench]\n    exportname = ${img}\n`,
    );
    execFileSync('nbd-server', ['-C', conf, '-p', nbdPidFile], { stdio: 'ignore' });
    // nbd-server daemonizes; wait until it answers.
    for (let i = 0; ; i++) {
      const r = spawnSync(
        bins.devbench,
        ['nbd', `127.0.0.1:${nbdPort}`, 'bench', '--op', 'seqread', '--ops', '1'],
        { stdio: 'ignore' },
      );
      if (r.status === 0) break;
      if (i > 50) throw new Error('nbd-server did not come up');
      await new Promise((r) => setTimeout(r, 100));
    }

    const targets: Record<string, string[]> = {
      fuse: ['file', join(mnt, 'bench', 'disk0')],
      nbd: ['nbd', `127.0.0.1:${nbdPort}`, 'bench'],
      local: ['file', img],
      wire: ['amw', server.address, 'disk0'],
    };
    const raw: Record<string, Record<string, Result[]>> = {};
    for (const w of WORKLOADS) {
      raw[w.name] = {};
      for (let round = 0; round < ROUNDS; round++) {
        for (const [name, target] of Object.entries(targets)) {
          const r = devbench(bins.devbench, target, w.op, w.bs, w.ops);
          (raw[w.name] as Record<string, Result[]>)[name] ??= [];
          (raw[w.name] as Record<string, Result[]>)[name]?.push(r);
        }
      }
    }

    const results: Record<string, Record<string, number>> = {};
    const ratios: Record<string, number> = {};
    let logSum = 0;
    console.log(
      `bench:dev  image ${IMAGE_MB} MiB on loopback, queue depth 1, median of ${ROUNDS} interleaved rounds`,
    );
    console.log(
      `${'workload'.padEnd(15)}${'target'.padEnd(8)}${'MB/s'.padStart(10)}${'IOPS'.padStart(10)}${'p50 us'.padStart(10)}${'p99 us'.padStart(10)}`,
    );
    for (const w of WORKLOADS) {
      for (const name of Object.keys(targets)) {
        const rs = (raw[w.name] as Record<string, Result[]>)[name] as Result[];
        const m = {
          mb_s: round2(median(rs.map((r) => r.mb_s))),
          iops: Math.round(median(rs.map((r) => r.iops))),
          p50_us: round2(median(rs.map((r) => r.p50_us))),
          p99_us: round2(median(rs.map((r) => r.p99_us))),
        };
        results[`${name}_${w.name}`] = m;
        console.log(
          `${w.name.padEnd(15)}${name.padEnd(8)}${String(m.mb_s).padStart(10)}${String(m.iops).padStart(10)}${String(m.p50_us).padStart(10)}${String(m.p99_us).padStart(10)}`,
        );
      }
      const fuse = results[`fuse_${w.name}`]?.mb_s ?? 0;
      const nbd = results[`nbd_${w.name}`]?.mb_s ?? 1;
      const local = results[`local_${w.name}`]?.mb_s ?? 1;
      ratios[`fuse_vs_nbd_${w.name}`] = round2(fuse / nbd);
      // The same at the median op (nbd p50 / fuse p50): less swayed by stalls of a busy machine.
      ratios[`fuse_vs_nbd_p50_${w.name}`] = round2(
        (results[`nbd_${w.name}`]?.p50_us ?? 0) / (results[`fuse_${w.name}`]?.p50_us ?? 1),
      );
      ratios[`fuse_vs_local_${w.name}`] = round2(fuse / local);
      logSum += Math.log(fuse / nbd);
    }
    ratios.fuse_vs_nbd = round2(Math.exp(logSum / WORKLOADS.length));
    console.log(
      'ratios (throughput, > 1 is FUSE faster; fuse_vs_nbd is the geometric mean of the four throughput ratios; goal >= 1; *_p50_* compare median op times):',
    );
    for (const [k, v] of Object.entries(ratios)) console.log(`  ${k.padEnd(32)} ${v}`);
    console.log(JSON.stringify({ bench: 'dev', results, ratios }));
  } finally {
    await cleanup();
  }
}

await main();
