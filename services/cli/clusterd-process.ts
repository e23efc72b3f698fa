/**
 * Starting clusterd for `clusteradm init`: a detached process that outlives
 * clusteradm, logging to `<home>/clusterd.log`, its pid in `<home>/clusterd.pid`.
 * It runs the built server when clusteradm itself runs from the build (dist/),
 * else the TypeScript source through the project's loader.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { AmalgamClient } from '../client/index.ts';
import type { ClusterHome } from './cluster-home.ts';
import { CliError } from './errors.ts';
import { PUBLIC, writeFileAtomic } from './files.ts';

/** `node <args...>` that runs clusterd's entry point. */
export function clusterdCommand(): string[] {
  const here = import.meta.url;
  if (here.endsWith('.js')) return [fileURLToPath(new URL('../controlplane/server.js', here))];
  return [
    '--import',
    fileURLToPath(new URL('../../scripts/ts-loader.mjs', here)),
    fileURLToPath(new URL('../controlplane/server.ts', here)),
  ];
}

export interface StartedClusterd {
  pid: number;
  /** Resolves when the process ends (while clusteradm still runs). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function startClusterd(layout: ClusterHome): Promise<StartedClusterd> {
  const args = clusterdCommand();
  const entry = args.at(-1) as string;
  if (!existsSync(entry)) {
    throw new CliError('CLUSTERD_START_FAILED', `clusterd is not installed here (no ${entry})`);
  }
  const log = openSync(layout.log, 'a', 0o600);
  let pid: number | undefined;
  let exited: StartedClusterd['exited'];
  try {
    const child = spawn(process.execPath, [...args, '--config', layout.clusterdConfig], {
      cwd: layout.home,
      detached: true,
      stdio: ['ignore', log, log],
      env: process.env,
    });
    exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', () => resolve({ code: null, signal: null }));
    });
    child.unref();
    pid = child.pid;
  } finally {
    closeSync(log);
  }
  if (pid === undefined) {
    throw new CliError('CLUSTERD_START_FAILED', `could not start ${process.execPath}`);
  }
  await writeFileAtomic(layout.pid, `${pid}\n`, PUBLIC);
  return { pid, exited };
}

/** Polls /readyz until clusterd answers 2xx; fails early when the process ends. */
export async function waitUntilReady(
  client: AmalgamClient,
  started: StartedClusterd,
  layout: ClusterHome,
  timeoutMs: number,
): Promise<void> {
  let ended: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void started.exited.then((result) => {
    ended = result;
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (ended) {
      throw new CliError(
        'CLUSTERD_START_FAILED',
        `clusterd exited (${ended.signal ?? `code ${ended.code}`}): ${await logTail(layout.log)}`,
        { log: layout.log },
      );
    }
    try {
      if (await client.ready()) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() >= deadline) {
      throw new CliError(
        'CLUSTERD_START_FAILED',
        `not ready after ${Math.round(timeoutMs / 1000)}s; it is still running (pid ${started.pid}), see ${layout.log}`,
        { pid: started.pid, log: layout.log },
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The reason clusterd gave: its last error-level log line (pino JSON), else its last line. */
async function logTail(path: string): Promise<string> {
  let lines: string[];
  try {
    lines = (await readFile(path, 'utf8')).trimEnd().split('\n');
  } catch {
    return `no log at ${path}`;
  }
  const described = lines.map(describeLogLine);
  const error = described.filter((line) => line.level >= 50).at(-1);
  return `${(error ?? described.at(-1))?.text ?? 'empty log'} (log: ${path})`;
}

function describeLogLine(line: string): { level: number; text: string } {
  try {
    const entry = JSON.parse(line) as {
      level?: unknown;
      msg?: unknown;
      err?: { message?: unknown };
    };
    const level = typeof entry.level === 'number' ? entry.level : 0;
    const reason = typeof entry.err?.message === 'string' ? `: ${entry.err.message}` : '';
    return { level, text: `${String(entry.msg ?? '')}${reason}` };
  } catch {
    return { level: 0, text: line };
  }
}

/** Whether a process with this pid exists (signal 0 checks without signalling). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
