/** Memory: MemTotal and SwapTotal; the contribution is the configured amount or RAM + swap. */
import type { NodeCapacity } from '../../api/contracts.ts';
import { meminfoField, parseMeminfo } from './meminfo.ts';
import type { Fingerprinter } from './types.ts';

export function memoryCapacity(
  meminfoText: string,
  contributeBytes?: number,
): Pick<NodeCapacity, 'memoryBytes' | 'swapBytes' | 'contributedBytes'> {
  const fields = parseMeminfo(meminfoText);
  const memoryBytes = meminfoField(fields, 'MemTotal');
  const swapBytes = fields.get('SwapTotal') ?? 0;
  return {
    memoryBytes,
    swapBytes,
    contributedBytes: contributeBytes ?? memoryBytes + swapBytes,
  };
}

export const memory: Fingerprinter = {
  name: 'memory',
  async probe(env) {
    return { capacity: memoryCapacity(await env.readText('/proc/meminfo'), env.contributeBytes) };
  },
};
