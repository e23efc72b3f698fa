/**
 * One page server process: spawned with the node's range, ready once it
 * prints `listening HOST:PORT` (its first stdout line), stopped with SIGTERM
 * (SIGKILL when it does not exit in time).
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Range } from './reconcile.ts';
import { spawnTiedToAgent } from './tied-child.ts';

export interface PageServerOptions {
  /** Path of the pageserver binary; default native/build/pageserver of this repository. */
  binary?: string;
  /** Loopback host it listens on; default 127.0.0.1. */
  listenHost?: string;
  /** Port; default 0 (any free port). */
  listenPort?: number;
  /**
   * Serve plaintext (`--plaintext-loopback`; loopback addresses only) instead
   * of mutual TLS with the node's own certificate, the default.
   */
  plaintextLoopback?: boolean;
  /** More arguments (e.g. the TLS files, when the page server takes them). */
  extraArgs?: string[];
  /** The `--devices FILE` it serves (re-read on SIGHUP); the agent maintains it. */
  devicesFile?: string;
  /** How long to wait for `listening`. Default 10 s. */
  startTimeoutMs?: number;
}

export function defaultPageServerBinary(): string {
  const candidates = ['../../native/build/pageserver', '../../../native/build/pageserver'].map(
    (rel) => fileURLToPath(new URL(rel, import.meta.url)),
  );
  return candidates.find((p) => existsSync(p)) ?? (candidates[0] as string);
}

export function pageServerArgs(options: PageServerOptions, range: Range): string[] {
  const host = options.listenHost ?? '127.0.0.1';
  const listen = host.includes(':') ? `[${host}]` : host;
  return [
    '--listen',
    `${listen}:${options.listenPort ?? 0}`,
    '--range-start',
    String(range.start),
    '--range-size',
    String(range.size),
    ...(options.plaintextLoopback === true ? ['--plaintext-loopback'] : []),
    ...(options.devicesFile === undefined ? [] : ['--devices', options.devicesFile]),
    ...(options.extraArgs ?? []),
  ];
}

export interface RunningPageServer {
  child: ChildProcess;
  pid: number;
  host: string;
  port: number;
  range: Range;
  /** Resolves with the exit code or signal when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderrTail(): string;
  stop(graceMs?: number): Promise<void>;
}

export function startPageServer(
  options: PageServerOptions,
  range: Range,
): Promise<RunningPageServer> {
  const binary = options.binary ?? defaultPageServerBinary();
  // It dies with the agent: a crashed agent's successor starts a page server of its own.
  const child = spawnTiedToAgent(binary, pageServerArgs(options, range), {
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
  const stop = async (graceMs = 3000): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };
  return new Promise((resolve, reject) => {
    const timeout = setTimeout(() => {
      void stop(0);
      reject(new Error(`pageserver printed no "listening" line in time: ${stderr}`));
    }, options.startTimeoutMs ?? 10_000);
    child.once('error', (err) => {
      clearTimeout(timeout);
      reject(err);
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timeout);
      reject(new Error(`pageserver exited (${code ?? signal}) before listening: ${stderr.trim()}`));
    });
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.once('line', (line) => {
      clearTimeout(timeout);
      const m = /^listening (\[[^\]]+\]|[^:\s]+):(\d+)$/.exec(line.trim());
      if (!m?.[1] || !m[2] || child.pid === undefined) {
        void stop(0);
        reject(new Error(`unexpected first line from pageserver: ${JSON.stringify(line)}`));
        return;
      }
      child.stdout?.resume();
      resolve({
        child,
        pid: child.pid,
        host: m[1].replace(/^\[|\]$/g, ''),
        port: Number(m[2]),
        range,
        exited,
        stderrTail: () => stderr,
        stop,
      });
    });
  });
}
