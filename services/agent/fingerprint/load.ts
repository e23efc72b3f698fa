/**
 * Load: load1/5/15 and the process count from /proc/loadavg
 * (`0.52 0.58 0.59 2/789 12345`: the 4th field is running/total scheduling
 * entities), memory used = MemTotal - MemAvailable from /proc/meminfo.
 */
import type { LoadReport } from '../../api/contracts.ts';
import { meminfoField, parseMeminfo } from './meminfo.ts';
import type { Fingerprinter } from './types.ts';

export function parseLoadavg(
  text: string,
): Pick<LoadReport, 'load1' | 'load5' | 'load15' | 'processes'> {
  const m = /^\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+\d+\/(\d+)/.exec(text);
  if (!m)
    throw new Error(`/proc/loadavg is not "l1 l5 l15 running/total last": ${JSON.stringify(text)}`);
  return {
    load1: Number(m[1]),
    load5: Number(m[2]),
    load15: Number(m[3]),
    processes: Number(m[4]),
  };
}

export function memoryUsed(meminfoText: string): number {
  const fields = parseMeminfo(meminfoText);
  const total = meminfoField(fields, 'MemTotal');
  const available =
    fields.get('MemAvailable') ??
    (fields.get('MemFree') ?? 0) + (fields.get('Buffers') ?? 0) + (fields.get('Cached') ?? 0);
  return Math.max(0, total - available);
}

export const load: Fingerprinter = {
  name: 'load',
  async probe(env) {
    const [loadavg, meminfo] = await Promise.all([
      env.readText('/proc/loadavg'),
      env.readText('/proc/meminfo'),
    ]);
    return { load: { ...parseLoadavg(loadavg), memoryUsedBytes: memoryUsed(meminfo) } };
  },
};
