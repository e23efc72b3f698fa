/**
 * Shared by the netmem-map tests and bench:netmem: the native programs of
 * native/netmem (built on import), page servers on loopback, running a
 * program to completion with a ready/go handshake and a guard timer, and the
 * route table netmem reads (NETMEM_ROUTES_FILE) built from a cluster's layout.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { AmalgamClient } from '../../services/client/index.ts';
import {
  formatRoutesFile,
  netmemMapSpec,
  netmemRoutes,
} from '../../services/client/netmem-routes.ts';
import { NATIVE_DIR, pageServerBinary } from '../harness/native.ts';
import { patient } from '../harness/patience.ts';

export const BUILD = join(NATIVE_DIR, 'build');
export const NETMEM_RUN = join(BUILD, 'netmem-run');
export const SUM_ARRAY = join(BUILD, 'test', 'sum_array');
export const MAP_TEST = join(BUILD, 'test', 'netmem_map_test');
export const NETMEM_TEST = join(BUILD, 'test', 'netmem_test');
export const NETMEM_BENCH = join(BUILD, 'netmem_bench');

/** Builds the page server and the netmem programs (make is a no-op when up to date). */
export function buildNetmem(targets: string[] = ['netmem-map-test']): void {
  pageServerBinary();
  execFileSync('make', ['-C', NATIVE_DIR, ...targets], { stdio: 'ignore' });
}

export interface PageServer {
  child: ChildProcess;
  start: number;
  size: number;
  port: number;
  /** The route netmem reads: START:SIZE=NODE@127.0.0.1:PORT. */
  route: string;
}

/**
 * A page server on loopback: plaintext, or mutual TLS with these PEM files.
 * `node` names its owner in the route (over TLS it must be the CN of `cert`).
 */
export function startPageServer(
  start: number,
  size: number,
  tls?: { cert: string; key: string; ca: string },
  node = 'local',
): Promise<PageServer> {
  const transport = tls
    ? ['--tls-cert', tls.cert, '--tls-key', tls.key, '--tls-ca', tls.ca]
    : ['--plaintext-loopback'];
  const child = spawn(
    join(BUILD, 'pageserver'),
    [
      ...transport,
      '--listen',
      '127.0.0.1:0',
      '--range-start',
      `0x${start.toString(16)}`,
      '--range-size',
      String(size),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.once('line', (line) => {
      const m = /^listening 127\.0\.0\.1:(\d+)$/.exec(line);
      if (!m?.[1]) reject(new Error(`unexpected first line: ${line}`));
      else {
        const port = Number(m[1]);
        resolve({
          child,
          start,
          size,
          port,
          route: `0x${start.toString(16)}:${size}=${node}@127.0.0.1:${port}`,
        });
      }
    });
    child.once('exit', (code) => reject(new Error(`pageserver exited ${code}`)));
  });
}

export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  lines: string[];
  stderr: string;
  /** Milliseconds from start to exit. */
  ms: number;
  /** Milliseconds from the `go` sent to exit (NaN without a ready handshake). */
  msAfterGo: number;
}

/**
 * Runs a program to completion. When it prints `ready`, `onReady` runs, then
 * `go` is written to its stdin. A guard kills it after `guardMs` (the test
 * then fails on the signal): nothing hangs the suite. The guard is a hang
 * guard, scaled by the machine's load (patient()).
 */
export function runProgram(
  file: string,
  args: string[],
  options: {
    env?: NodeJS.ProcessEnv;
    children: ChildProcess[];
    onReady?: () => Promise<void>;
    guardMs?: number;
  },
): Promise<RunResult> {
  const t0 = Date.now();
  let goAt = Number.NaN;
  const child = spawn(file, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  });
  options.children.push(child);
  const lines: string[] = [];
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  child.stdin?.on('error', () => {}); // it may exit before reading
  const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  rl.on('line', (line) => {
    lines.push(line);
    if (line === 'ready') {
      (options.onReady ?? (async () => {}))().then(
        () => {
          goAt = Date.now();
          child.stdin?.write('go\n');
        },
        () => child.kill('SIGKILL'),
      );
    }
  });
  const guard = setTimeout(() => child.kill('SIGKILL'), patient(options.guardMs ?? 120_000));
  return new Promise((resolve) => {
    child.once('close', (code, signal) => {
      clearTimeout(guard);
      const now = Date.now();
      resolve({ code, signal, lines, stderr, ms: now - t0, msAfterGo: now - goAt });
    });
  });
}

/**
 * The route table for netmem (one START:SIZE=NODE@HOST:PORT a line) from a
 * cluster: the layout (GET /v1/memory/layout) and each node's published page
 * server (NodeView.pageserver). Nodes without a page server are left out. A
 * TLS page server needs NETMEM_TLS_CERT/KEY/CA (a node's credentials) on the
 * netmem side; the file itself does not say which transport a route uses.
 */
export async function routeTable(client: Pick<AmalgamClient, 'memory' | 'nodes'>): Promise<string> {
  const [layout, nodes] = await Promise.all([client.memory.layout(), client.nodes.list()]);
  return formatRoutesFile(netmemRoutes(layout, nodes));
}

/** netmem-run's --map for a whole segment: its extents, in order, back to back. */
export const segmentMapSpec = netmemMapSpec;

/** A list for every process a test starts: at `t`'s teardown each still running gets SIGKILL and is awaited. */
export function killedAtTeardown(t: {
  teardown: (fn: () => Promise<void>) => void;
}): ChildProcess[] {
  const children: ChildProcess[] = [];
  t.teardown(async () => {
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      await exited(c);
    }
  });
  return children;
}
