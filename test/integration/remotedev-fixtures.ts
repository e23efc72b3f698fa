/**
 * Shared by the remotedev-*.test.ts files and bench:dev: start page servers
 * with a --devices file and remotedev-fuse mounts, on loopback, and take them
 * all down again (mounts unmounted with fusermount3 -u, processes killed by pid).
 */
import { type ChildProcess, execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { NATIVE_DIR, pageServerBinary } from '../harness/native.ts';
import { findSetpriv } from '../harness/processes.ts';

export const FUSE_BINARY = join(NATIVE_DIR, 'build', 'remotedev-fuse');
export const DEVBENCH_BINARY = join(NATIVE_DIR, 'build', 'devbench');

/** Build native/ when the page server, remotedev-fuse or devbench is missing. */
export function remotedevBinaries(): { pageserver: string; fuse: string; devbench: string } {
  const pageserver = pageServerBinary();
  if (!existsSync(FUSE_BINARY) || !existsSync(DEVBENCH_BINARY)) {
    execFileSync('make', ['-C', NATIVE_DIR], { stdio: 'ignore' });
  }
  return { pageserver, fuse: FUSE_BINARY, devbench: DEVBENCH_BINARY };
}

export interface Proc {
  child: ChildProcess;
  stderr: () => string;
}

/**
 * Spawn so the child dies with the test process even when no teardown runs
 * (setpriv --pdeathsig): remotedev-fuse gets SIGTERM and unmounts itself.
 */
function spawnOwned(binary: string, args: string[], deathSignal: 'TERM' | 'KILL'): ChildProcess {
  const setpriv = findSetpriv();
  const stdio: ['ignore', 'pipe', 'pipe'] = ['ignore', 'pipe', 'pipe'];
  return setpriv
    ? spawn(setpriv, ['--pdeathsig', deathSignal, '--', binary, ...args], { stdio })
    : spawn(binary, args, { stdio });
}

function track(child: ChildProcess): () => string {
  let err = '';
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  return () => err;
}

/** Resolves with the first stdout line once it matches `re`; rejects when the process exits first. */
function firstLine(
  child: ChildProcess,
  re: RegExp,
  stderr: () => string,
): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.once('line', (line) => {
      const m = re.exec(line);
      if (!m) reject(new Error(`unexpected first line: ${line}`));
      else resolve(m);
    });
    child.once('exit', (code, sig) =>
      reject(new Error(`exited (${code ?? sig}) before it was ready: ${stderr()}`)),
    );
  });
}

export interface PageServer extends Proc {
  port: number;
  address: string;
}

export async function startPageServer(
  binary: string,
  devicesFile: string,
  transport: string[] = ['--plaintext-loopback'],
): Promise<PageServer> {
  const args = [
    ...transport,
    '--listen',
    '127.0.0.1:0',
    '--range-start',
    '0x40000000',
    '--range-size',
    '1M',
    '--devices',
    devicesFile,
  ];
  const child = spawnOwned(binary, args, 'KILL');
  const stderr = track(child);
  const m = await firstLine(child, /^listening 127\.0\.0\.1:(\d+)$/, stderr);
  const port = Number(m[1]);
  return { child, stderr, port, address: `127.0.0.1:${port}` };
}

export interface Mount extends Proc {
  dir: string;
}

export async function startMount(
  binary: string,
  dir: string,
  treeFile: string,
  extra: string[] = ['--plaintext-loopback'],
): Promise<Mount> {
  const args = ['--mount', dir, '--tree', treeFile, '--foreground', ...extra];
  const child = spawnOwned(binary, args, 'TERM');
  const stderr = track(child);
  await firstLine(child, /^mounted /, stderr);
  return { child, stderr, dir };
}

/** True while `dir` is a FUSE mount point (by /proc/self/mounts). */
export function isMounted(dir: string): boolean {
  const mounts = readFileSync('/proc/self/mounts', 'utf8');
  return mounts.split('\n').some((l) => l.split(' ')[1] === dir);
}

/** Unmount (also a mount whose daemon died) and stop the daemon; never throws. */
export async function stopMount(m: Mount): Promise<void> {
  if (isMounted(m.dir)) {
    const r = spawnSync('fusermount3', ['-u', m.dir], { stdio: 'ignore' });
    if (r.status !== 0) spawnSync('fusermount3', ['-u', '-z', m.dir], { stdio: 'ignore' });
  }
  await stopProcess(m.child);
}

/** SIGTERM, then SIGKILL after 5 s; resolves when the process is gone. */
export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await gone;
  clearTimeout(timer);
}

const execFileAsync = promisify(execFile);

/** Run a command; never throws: exit code and stderr (60 s bound so nothing hangs the suite). */
export async function sh(cmd: string, args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    const r = await execFileAsync(cmd, args, { timeout: 60_000, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stderr: r.stderr.toString() };
  } catch (e) {
    const err = e as { code?: number | string; stderr?: string; killed?: boolean };
    if (err.killed) return { code: -1, stderr: 'killed after 60 s (hung)' };
    return { code: typeof err.code === 'number' ? err.code : 1, stderr: String(err.stderr) };
  }
}

/** The errno code `fn` throws (EIO, EACCES, ...), or 'OK' when it does not throw. */
export function errnoOf(fn: () => unknown): string {
  try {
    fn();
    return 'OK';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e);
  }
}

/** A sparse device image of `size` bytes at `path`, starting with `fill` when given. */
export function createImage(path: string, size: number, fill?: Buffer): void {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, size);
  if (fill) writeSync(fd, fill, 0, fill.length, 0);
  closeSync(fd);
}
