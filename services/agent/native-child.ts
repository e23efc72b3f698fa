/**
 * A supervised native child (the page server, remotedev-fuse): spawned tied to
 * the agent (tied-child.ts), ready once its first stdout line says so, its
 * stderr's last 4 KiB kept for error messages, stopped with SIGTERM (SIGKILL
 * when it does not exit within the grace time).
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { spawnTiedToAgent } from './tied-child.ts';

export type ChildExit = { code: number | null; signal: NodeJS.Signals | null };

export interface NativeChild<R> {
  child: ChildProcess;
  pid: number;
  /** What `parseReady` made of the first stdout line. */
  ready: R;
  /** Resolves with the exit code or signal when the process has exited. */
  exited: Promise<ChildExit>;
  stderrTail(): string;
  stop(graceMs?: number): Promise<void>;
}

export interface NativeChildSpec<R> {
  /** Name in error messages, e.g. `pageserver`. */
  name: string;
  binary: string;
  args: string[];
  /** The first word of the ready line, for the timeout message (`listening`). */
  readyWord: string;
  /** What it had not done when it exited early, for the message (`listening`, `mounting`). */
  notYet: string;
  /** Default 10 s. */
  startTimeoutMs?: number;
  /** Default grace time of `stop`. */
  graceMs: number;
  /** Runs at the end of every `stop`, also when the child had already exited. */
  afterStop?: () => void;
  /** The ready line's meaning, or undefined when the line is not the ready line. */
  parseReady(line: string): R | undefined;
}

export function startNativeChild<R>(spec: NativeChildSpec<R>): Promise<NativeChild<R>> {
  const child = spawnTiedToAgent(spec.binary, spec.args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4096);
  });
  const exited = new Promise<ChildExit>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: null, signal: null }));
  });
  const stop = async (graceMs = spec.graceMs): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    }
    spec.afterStop?.();
  };
  return new Promise((resolve, reject) => {
    const timeout = setTimeout(() => {
      void stop(0);
      reject(new Error(`${spec.name} printed no "${spec.readyWord}" line in time: ${stderr}`));
    }, spec.startTimeoutMs ?? 10_000);
    child.once('error', (err) => {
      clearTimeout(timeout);
      reject(err);
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timeout);
      reject(
        new Error(
          `${spec.name} exited (${code ?? signal}) before ${spec.notYet}: ${stderr.trim()}`,
        ),
      );
    });
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.once('line', (line) => {
      clearTimeout(timeout);
      const ready = spec.parseReady(line);
      if (ready === undefined || child.pid === undefined) {
        void stop(0);
        reject(new Error(`unexpected first line from ${spec.name}: ${JSON.stringify(line)}`));
        return;
      }
      child.stdout?.resume();
      resolve({ child, pid: child.pid, ready, exited, stderrTail: () => stderr, stop });
    });
  });
}
