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
import { fileURLToPath } from 'node:url';
import { type ChildExit, startNativeChild } from './native-child.ts';

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
  exited: Promise<ChildExit>;
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

export async function startRemotedev(options: RemotedevProcessOptions): Promise<RunningRemotedev> {
  // With setpriv, the daemon gets SIGTERM (and unmounts) when the agent dies, so a
  // crashed agent leaves no daemon behind; the next agent mounts afresh.
  const { ready: _mounted, ...child } = await startNativeChild({
    name: 'remotedev-fuse',
    binary: options.binary ?? defaultRemotedevBinary(),
    args: remotedevArgs(options),
    readyWord: 'mounted',
    notYet: 'mounting',
    startTimeoutMs: options.startTimeoutMs,
    graceMs: 5000,
    afterStop: () => unmount(options.mount),
    parseReady: (line) => (line.startsWith('mounted ') ? true : undefined),
  });
  return { ...child, mount: options.mount, startedAt: Date.now() };
}
