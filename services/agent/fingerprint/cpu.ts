/**
 * CPUs: the count of `processor` entries of /proc/cpuinfo and a speed score,
 * the mean `cpu MHz`, or the mean `bogomips` where the clock is not reported
 * (many ARM machines and VMs); at least 1.
 */
import type { NodeCapacity } from '../../api/contracts.ts';
import type { Fingerprinter } from './types.ts';

function mean(text: string, field: RegExp): number | undefined {
  const values = [...text.matchAll(field)].map((m) => Number(m[1])).filter((v) => v > 0);
  if (values.length === 0) return undefined;
  return values.reduce((a, b) => a + b, 0) / values.length;
}

export function cpuCapacity(cpuinfoText: string): Pick<NodeCapacity, 'cpus' | 'cpuSpeed'> {
  const cpus = Math.max(1, [...cpuinfoText.matchAll(/^processor\s*:/gm)].length);
  const mhz = mean(cpuinfoText, /^cpu MHz\s*:\s*([\d.]+)\s*$/gim);
  const bogomips = mean(cpuinfoText, /^bogomips\s*:\s*([\d.]+)\s*$/gim);
  return { cpus, cpuSpeed: Math.max(1, Math.round(mhz ?? bogomips ?? 0)) };
}

export const cpu: Fingerprinter = {
  name: 'cpu',
  async probe(env) {
    return { capacity: cpuCapacity(await env.readText('/proc/cpuinfo')) };
  },
};
