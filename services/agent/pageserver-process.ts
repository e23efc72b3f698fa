/**
 * One page server process: spawned with the node's range, ready once it
 * prints `listening HOST:PORT` (its first stdout line), stopped with SIGTERM
 * (SIGKILL when it does not exit in time).
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type ChildExit, startNativeChild } from './native-child.ts';
import type { Range } from './page-server-decision.ts';

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
  exited: Promise<ChildExit>;
  stderrTail(): string;
  stop(graceMs?: number): Promise<void>;
}

export async function startPageServer(
  options: PageServerOptions,
  range: Range,
): Promise<RunningPageServer> {
  // It dies with the agent: a crashed agent's successor starts a page server of its own.
  const { ready, ...child } = await startNativeChild({
    name: 'pageserver',
    binary: options.binary ?? defaultPageServerBinary(),
    args: pageServerArgs(options, range),
    readyWord: 'listening',
    notYet: 'listening',
    startTimeoutMs: options.startTimeoutMs,
    graceMs: 3000,
    parseReady: (line) => {
      const m = /^listening (\[[^\]]+\]|[^:\s]+):(\d+)$/.exec(line.trim());
      return m?.[1] && m[2]
        ? { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) }
        : undefined;
    },
  });
  return { ...child, ...ready, range };
}
