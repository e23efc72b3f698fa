/** How clusteradm prints process records. */
import { InvalidArgumentError } from 'commander';
import type { ProcessRecord } from '../core/processes.ts';

export const PROCESS_COLUMNS = ['CPID', 'NODE', 'STATE', 'EPOCH', 'MOVES', 'CPU', 'AGE', 'COMMAND'];

function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  return `${Math.round(s / 3600)}h`;
}

export function processRow(r: ProcessRecord, now: number, cpu?: number): string[] {
  const state =
    r.state === 'migrating' && r.migration
      ? `migrating(${r.migration.from}->${r.migration.to})`
      : r.state === 'exited'
        ? `exited(${r.exitCode})`
        : r.state;
  return [
    String(r.cpid),
    r.home,
    state,
    String(r.epoch),
    String(r.migrations),
    cpu === undefined ? '-' : `${Math.round(cpu * 100)}%`,
    age(now - r.createdAt),
    [r.command, ...r.args].join(' ').slice(0, 80),
  ];
}

/** A cluster PID argument (commander parser): a decimal integer. */
export function parseCpid(value: string): number {
  if (!/^[1-9][0-9]{0,9}$/.test(value)) {
    throw new InvalidArgumentError('a cluster PID (a decimal number)');
  }
  return Number(value);
}
