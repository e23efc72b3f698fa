/**
 * One copy of a cluster process, run under its fence shim (fence-shim.mjs):
 * the shim spawns the process, reports its pid and its end on stdout (one
 * JSON line each), takes `deadline`, `signal` and `kill` lines on stdin, and
 * SIGKILLs the process when the lease deadline passes, even if this agent is
 * frozen or dead.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import type { CopyOutcome } from './copy-decision.ts';
import { monotonicMs } from './monotonic.ts';

const SHIM = new URL('./fence-shim.mjs', import.meta.url).pathname;

export interface CopySpec {
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  logFile: string;
  intervalLog: string | null;
  cpid: number;
  epoch: number;
  node: string;
  copy: string;
  /** The lease deadline, CLOCK_MONOTONIC ms (monotonic.ts). */
  deadline: number;
  setpriv: string | null;
  /** Whom the process runs as (null: as the agent). */
  runAs: { uid: number; gid: number; groups: number[] } | null;
}

export type EndHow = 'checkpoint' | 'stop' | 'kill';

export class ShimCopy {
  readonly cpid: number;
  readonly epoch: number;
  /** The copy's id in the interval log. */
  readonly id: string;
  pid: number | null = null;
  /** Why we are ending it, if we are. */
  ending: EndHow | null = null;
  /** Set once the shim exited. */
  outcome: CopyOutcome | null = null;
  readonly exited: Promise<CopyOutcome>;
  readonly cpu = { ticks: 0, at: monotonicMs(), use: 0 };
  readonly #shim: ChildProcess;

  constructor(spec: CopySpec, onPid: (pid: number) => void) {
    this.cpid = spec.cpid;
    this.epoch = spec.epoch;
    this.id = spec.copy;
    // The spec (the process's environment included) in the shim's environment, not its argv.
    this.#shim = spawn(process.execPath, [SHIM], {
      stdio: ['pipe', 'pipe', 'inherit'],
      // The agent's node flags (NODE_OPTIONS) apply to its shims too; the process gets none.
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        AMALGAM_SHIM_SPEC: JSON.stringify(spec),
        ...(process.env.NODE_OPTIONS ? { NODE_OPTIONS: process.env.NODE_OPTIONS } : {}),
      },
    });
    this.#shim.stdin?.on('error', () => {});
    let reported: CopyOutcome | null = null;
    this.#readLines((msg) => {
      if (typeof msg.pid === 'number') {
        this.pid = msg.pid;
        onPid(msg.pid);
      } else if ('exit' in msg) reported = outcomeOf(msg);
    });
    this.exited = new Promise((resolve) => {
      this.#shim.once('exit', () => {
        this.outcome = reported ?? {
          code: null,
          signal: 'SIGKILL',
          fenced: true,
          error: 'shim died',
        };
        resolve(this.outcome);
      });
    });
  }

  get shimPid(): number | undefined {
    return this.#shim.pid;
  }

  get done(): boolean {
    return this.outcome !== null;
  }

  /** Ends it: SIGTERM (a checkpoint or a stop, SIGKILL after `graceMs`) or SIGKILL. */
  end(how: EndHow, graceMs: number): void {
    if (this.ending !== null) return;
    this.ending = how;
    if (how === 'kill') {
      this.#send('kill');
      return;
    }
    this.#send('signal SIGTERM');
    const timer = setTimeout(() => this.#send('kill'), graceMs);
    void this.exited.then(() => clearTimeout(timer));
  }

  /** SIGKILL now, whatever else is under way (the agent's close). */
  kill(): void {
    this.ending ??= 'kill';
    this.#send('kill');
  }

  /** `deadline`: CLOCK_MONOTONIC ms (monotonic.ts). */
  setDeadline(deadline: number): void {
    this.#send(`deadline ${deadline}`);
  }

  #send(line: string): void {
    this.#shim.stdin?.write(`${line}\n`);
  }

  #readLines(onMessage: (msg: Record<string, unknown>) => void): void {
    let buffer = '';
    this.#shim.stdout?.setEncoding('utf8');
    this.#shim.stdout?.on('data', (d: string) => {
      buffer += d;
      for (let i = buffer.indexOf('\n'); i >= 0; i = buffer.indexOf('\n')) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 1);
        let msg: Record<string, unknown>;
        try {
          msg = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue; // not ours
        }
        onMessage(msg);
      }
    });
  }
}

function outcomeOf(msg: Record<string, unknown>): CopyOutcome {
  return {
    code: msg.exit as number | null,
    signal: msg.signal as string | null,
    fenced: msg.fenced === true,
    ...(typeof msg.error === 'string' ? { error: msg.error } : {}),
  };
}
