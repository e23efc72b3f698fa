/**
 * The history of a chaos run, as Jepsen keeps one: every operation's call (`invoke`) and its
 * outcome, and every fault the nemesis injected, one JSON object per line, in the order they
 * happened. The checker reads only this (and the final state), never the system's internals.
 *
 * Outcomes: `ok` (acknowledged), `fail` (definitely not applied: a 4xx such as NAME_TAKEN),
 * `info` (indeterminate: a timeout, NO_QUORUM, an unreachable server; it may or may not apply).
 */
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';

/** What the workload does; new kinds (device names, process migrations) add their own `f`. */
export type OpKind = 'join' | 'allocate' | 'pid-block' | (string & {});

export interface OpEvent {
  type: 'invoke' | 'ok' | 'fail' | 'info';
  /** Operation id: the invoke and its completion share it. */
  op: number;
  /** The client process that ran it (one operation at a time per process). */
  process: number;
  f: OpKind;
  /** The machine whose API the call went to. */
  target: string;
  /** Invoke: the request. ok: the result. fail/info: `{ code, message }`. */
  value: unknown;
  /** ms since the run began (one clock: this process's monotonic clock). */
  time: number;
}

export interface NemesisEvent {
  type: 'nemesis';
  /** partition (value: groups), heal, kill/start/pause/resume (value: machine), loss, clear. */
  f: string;
  value: unknown;
  time: number;
}

export type HistoryEvent = OpEvent | NemesisEvent;

export class History {
  readonly events: HistoryEvent[] = [];
  private readonly started = performance.now();
  private nextOp = 0;

  constructor(readonly file?: string) {
    if (file) writeFileSync(file, '');
  }

  now(): number {
    return Math.round((performance.now() - this.started) * 1000) / 1000;
  }

  private add(event: HistoryEvent): void {
    this.events.push(event);
    if (this.file) appendFileSync(this.file, `${JSON.stringify(event)}\n`);
  }

  invoke(process: number, f: OpKind, target: string, value: unknown): number {
    const op = this.nextOp++;
    this.add({ type: 'invoke', op, process, f, target, value, time: this.now() });
    return op;
  }

  complete(
    op: number,
    type: 'ok' | 'fail' | 'info',
    process: number,
    f: OpKind,
    target: string,
    value: unknown,
  ): void {
    this.add({ type, op, process, f, target, value, time: this.now() });
  }

  nemesis(f: string, value: unknown): void {
    this.add({ type: 'nemesis', f, value, time: this.now() });
  }
}

export function readHistory(file: string): HistoryEvent[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as HistoryEvent);
}
