/** The registered fingerprinters, and the merge of their facts into capacity and load. */
import { readFile } from 'node:fs/promises';
import type { LoadReport, NodeCapacity } from '../../controlplane/service/contracts.ts';
import { cpu } from './cpu.ts';
import { load } from './load.ts';
import { memory } from './memory.ts';
import type { Facts, FingerprintEnv, Fingerprinter } from './types.ts';

export type { Facts, FingerprintEnv, Fingerprinter } from './types.ts';

/** Every fingerprinter, in the order their facts are merged (later ones win). */
export const FINGERPRINTERS: readonly Fingerprinter[] = [memory, cpu, load];

export const procEnv = (contributeBytes?: number): FingerprintEnv => ({
  readText: (path) => readFile(path, 'utf8'),
  ...(contributeBytes === undefined ? {} : { contributeBytes }),
});

export interface Inventory {
  capacity: NodeCapacity;
  load: LoadReport;
}

/** Runs every fingerprinter; one that fails leaves its fields at 0 and is reported in `errors`. */
export async function fingerprint(
  env: FingerprintEnv,
  list: readonly Fingerprinter[] = FINGERPRINTERS,
): Promise<Inventory & { errors: { name: string; error: Error }[] }> {
  const capacity: NodeCapacity = {
    memoryBytes: 0,
    swapBytes: 0,
    contributedBytes: 0,
    cpus: 1,
    cpuSpeed: 1,
  };
  const loadReport: LoadReport = {
    load1: 0,
    load5: 0,
    load15: 0,
    memoryUsedBytes: 0,
    processes: 0,
  };
  const errors: { name: string; error: Error }[] = [];
  const results = await Promise.allSettled(list.map((f) => f.probe(env)));
  results.forEach((result, i) => {
    const name = list[i]?.name ?? '?';
    if (result.status === 'rejected') {
      errors.push({
        name,
        error: result.reason instanceof Error ? result.reason : new Error(String(result.reason)),
      });
      return;
    }
    const facts: Facts = result.value;
    Object.assign(capacity, facts.capacity);
    Object.assign(loadReport, facts.load);
  });
  return { capacity, load: loadReport, errors };
}
