/**
 * One remotedev-fuse process: `native/build/remotedev-fuse --mount DIR --tree
 * FILE --foreground` with the node's TLS files (or `--plaintext-loopback`),
 * ready once it prints `mounted DIR` (its first stdout line), stopped with
 * SIGTERM (it unmounts), and a mount it left behind (a SIGKILL) taken down
 * with `fusermount3 -u` (lazily, `-uz`, when busy). It dies with the agent
 * (`setpriv --pdeathsig TERM`, when util-linux's setpriv is there).
 */
import { type ChildProcess, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { spawnTiedToAgent } from './tied-child.ts';

export interface RemotedevProcessOptions {
  /** Default: native/build/remotedev-fuse of this repository. */
  binary?: string;
  /** The mount point (an existing, empty directory). */
  mount: string;
  treeFile: string;
  /** The node's certificate, key and the cluster CA; absent: `--plaintext-loopback`. */
  tls?: { certFile: string; keyFile: string; caFile: string };
  extraArgs?: string[];
  /** How long to wait for `mounted`. Default 10 s. */
  startTimeoutMs?: number;
}

export interface RunningRemotedev {
  child: ChildProcess;
  pid: number;
  mount: string;
  startedAt: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderrTail(): string;
  /** SIGTERM (SIGKILL after `graceMs`), then unmount whatever is left. */
  stop(graceMs?: number): Promise<void>;
}

export function defaultRemotedevBinary(): string {
  const candidates = [
    '../../native/build/remotedev-fuse',
    '../../../native/build/remotedev-fuse',
  ].map((rel) => fileURLToPath(new URL(rel, import.meta.url)));
  return candidates.find((p) => existsSync(p)) ?? (candidates[0] as string);
}

export function remotedevArgs(options: RemotedevProcessOptions): string[] {
  const transport = options.tls
    ? ['--cert', options.tls.certFile, '--key', options.tls.keyFile, '--ca', options.tls.caFile]
    : ['--plaintext-loopback'];
  return [
    '--mount',
    options.mount,
    '--tree',
    options.treeFile,
    '--foreground',
    ...transport,
    ...(options.extraArgs ?? []),
  ];
}

/** `\040`-style escapes of /proc/self/mounts. */
const unescapeMount = (field: string): string =>
  field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));

/** True while `dir` (an absolute, canonical path) is a mount point. */
export function isMounted(dir: string): boolean {
  let text: string;
  try {
    text = readFileSync('/proc/self/mounts', 'utf8');
  } catch {
    return false;
  }
  return text.split('\n').some((line) => unescapeMount(line.split(' ')[1] ?? '') === dir);
}

/** Unmounts `dir` when it is mounted (also a mount whose daemon died); never throws. */
export function unmount(dir: string): boolean {
  if (!isMounted(dir)) return true;
  const r = spawnSync('fusermount3', ['-u', dir], { stdio: 'ignore' });
  if (r.status === 0 && !isMounted(dir)) return true;
  spawnSync('fusermount3', ['-u', '-z', dir], { stdio: 'ignore' });
  return !isMounted(dir);
}

export function startRemotedev(options: RemotedevProcessOptions): Promise<RunningRemotedev> {
  const binary = options.binary ?? defaultRemotedevBinary();
  // With setpriv, the daemon gets SIGTERM (and unmounts) when the agent dies, so a
  // crashed agent leaves no daemon behind; the next agent mounts afresh.
  const child = spawnTiedToAgent(binary, remotedevArgs(options), {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4096);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: null, signal: null }));
  });
  const stop = async (graceMs = 5000): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    }
    unmount(options.mount);
  };
  return new Promise((resolve, reject) => {
    const timeout = setTimeout(() => {
      void stop(0);
      reject(new Error(`remotedev-fuse printed no "mounted" line in time: ${stderr}`));
    }, options.startTimeoutMs ?? 10_000);
    child.once('error', (err) => {
      clearTimeout(timeout);
      reject(err);
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timeout);
      reject(
        new Error(`remotedev-fuse exited (${code ?? signal}) before mounting: ${stderr.trim()}`),
      );
    });
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.once('line', (line) => {
      clearTimeout(timeout);
      if (!line.startsWith('mounted ') || child.pid === undefined) {
        void stop(0);
        reject(new Error(`unexpected first line from remotedev-fuse: ${JSON.stringify(line)}`));
        return;
      }
      child.stdout?.resume();
      resolve({
        child,
        pid: child.pid,
        mount: options.mount,
        startedAt: Date.now(),
        exited,
        stderrTail: () => stderr,
        stop,
      });
    });
  });
}
