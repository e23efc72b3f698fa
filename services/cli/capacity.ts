/**
 * What a joining machine offers: its memory and swap from /proc/meminfo, its
 * CPUs from os.cpus(). By default it contributes all of its RAM + swap to the
 * network memory space.
 */
import { readFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import type { NodeCapacity } from '../api/contracts.ts';

export interface Meminfo {
  memTotalBytes: number;
  swapTotalBytes: number;
}

/** MemTotal and SwapTotal of /proc/meminfo (which counts in kB, meaning KiB). */
export function parseMeminfo(text: string): Meminfo {
  const field = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+)\\s*kB$`, 'm').exec(text);
    if (!match) throw new Error(`/proc/meminfo has no ${name} line`);
    return Number(match[1]) * 1024;
  };
  return { memTotalBytes: field('MemTotal'), swapTotalBytes: field('SwapTotal') };
}

export interface CpuInfo {
  speed: number;
}

/** The mean `bogomips` of /proc/cpuinfo, or undefined when it has none. */
export function parseBogomips(text: string): number | undefined {
  const values = [...text.matchAll(/^bogomips\s*:\s*([\d.]+)$/gim)].map((m) => Number(m[1]));
  if (values.length === 0) return undefined;
  return values.reduce((a, b) => a + b, 0) / values.length;
}

/**
 * Count, and a speed score: the mean clock in MHz, or the mean bogomips when
 * the clock is unknown (many VMs report 0); at least 1.
 */
export function cpuCapacity(
  list: CpuInfo[],
  bogomips?: number,
): { cpus: number; cpuSpeed: number } {
  const count = Math.max(1, list.length);
  const mean = list.reduce((sum, cpu) => sum + (cpu.speed || 0), 0) / count;
  const score = mean > 0 ? mean : (bogomips ?? 0);
  return { cpus: count, cpuSpeed: Math.max(1, Math.round(score)) };
}

export function capacityOf(
  meminfo: Meminfo,
  cpuList: CpuInfo[],
  contributedBytes: number | 'auto',
  bogomips?: number,
): NodeCapacity {
  return {
    memoryBytes: meminfo.memTotalBytes,
    swapBytes: meminfo.swapTotalBytes,
    contributedBytes:
      contributedBytes === 'auto'
        ? meminfo.memTotalBytes + meminfo.swapTotalBytes
        : contributedBytes,
    ...cpuCapacity(cpuList, bogomips),
  };
}

export async function readCapacity(contributedBytes: number | 'auto'): Promise<NodeCapacity> {
  const meminfo = parseMeminfo(await readFile('/proc/meminfo', 'utf8'));
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  return capacityOf(meminfo, cpus(), contributedBytes, parseBogomips(cpuinfo));
}
