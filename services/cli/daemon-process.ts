/**
 * The daemons clusteradm starts on this machine (clusterd by `init`,
 * clusteragent by `join`): detached processes that outlive clusteradm, logging
 * to a file, their pid in a pid file. They run the built entry point when
 * clusteradm itself runs from the build (dist/), else the TypeScript source
 * through the project's loader.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { CliError, type CliErrorCode } from './errors.ts';
import { PUBLIC, writeFileAtomic } from './files.ts';

/** `node <args...>` that runs an entry point given relative to services/ (e.g. `agent/main`). */
export function entryCommand(entry: string): string[] {
  const here = import.meta.url;
  if (here.endsWith('.js')) return [fileURLToPath(new URL(`../${entry}.js`, here))];
  return [
    '--import',
    fileURLToPath(new URL('../../scripts/ts-loader.mjs', here)),
    fileURLToPath(new URL(`../${entry}.ts`, here)),
  ];
}

export interface ProcessEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StartedDaemon {
  pid: number;
  log: string;
  /** Resolves when the process ends (while clusteradm still runs). */
  exited: Promise<ProcessEnd>;
}

export interface DaemonSpec {
  /** What it is, for messages ("clusterd"). */
  what: string;
  /** The entry point relative to services/, e.g. `controlplane/server`. */
  entry: string;
  args: string[];
  cwd: string;
  log: string;
  pidFile: string;
  /** The error code a failure to start is reported with. */
  failure: CliErrorCode;
}

export async function startDaemon(spec: DaemonSpec): Promise<StartedDaemon> {
  const command = entryCommand(spec.entry);
  const entry = command.at(-1) as string;
  if (!existsSync(entry)) {
    throw new CliError(spec.failure, `${spec.what} is not installed here (no ${entry})`);
  }
  const log = openSync(spec.log, 'a', 0o600);
  let pid: number | undefined;
  let exited: Promise<ProcessEnd>;
  try {
    const child = spawn(process.execPath, [...command, ...spec.args], {
      cwd: spec.cwd,
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
    throw new CliError(spec.failure, `could not start ${process.execPath}`);
  }
  await writeFileAtomic(spec.pidFile, `${pid}\n`, PUBLIC);
  return { pid, log: spec.log, exited };
}

/**
 * Polls `ready()` until it answers true; fails early, with the daemon's own
 * reason from its log, when the process ends, and after `timeoutMs`.
 */
export async function waitForDaemon(
  started: StartedDaemon,
  what: string,
  failure: CliErrorCode,
  ready: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  let ended: ProcessEnd | undefined;
  void started.exited.then((result) => {
    ended = result;
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (ended) {
      throw new CliError(
        failure,
        `${what} exited (${ended.signal ?? `code ${ended.code}`}): ${await logTail(started.log)}`,
        { log: started.log },
      );
    }
    try {
      if (await ready()) return;
    } catch {
      // Not answering yet.
    }
    if (Date.now() >= deadline) {
      throw new CliError(
        failure,
        `not ready after ${Math.round(timeoutMs / 1000)}s; it is still running (pid ${started.pid}), see ${started.log}`,
        { pid: started.pid, log: started.log },
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The reason a daemon gave: its last error-level log line (pino JSON), else its last line. */
export async function logTail(path: string): Promise<string> {
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

/** The live pid recorded in a pid file, or undefined (no file, garbage, or a dead process). */
export async function runningPid(pidFile: string): Promise<number | undefined> {
  const text = await readFile(pidFile, 'utf8').catch(() => '');
  const pid = Number.parseInt(text, 10);
  return Number.isInteger(pid) && pid > 0 && processAlive(pid) ? pid : undefined;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopProcess(pid: number, graceMs = 15_000): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (processAlive(pid)) {
    if (Date.now() >= deadline) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        return;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
