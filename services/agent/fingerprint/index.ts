/** The registered fingerprinters, and the merge of their facts into capacity and load. */
import { constants } from 'node:fs';
import { access, readdir, readFile, stat } from 'node:fs/promises';
import type { DeviceInventoryItem, LoadReport, NodeCapacity } from '../../api/contracts.ts';
import { cpu } from './cpu.ts';
import { devices } from './devices.ts';
import { load } from './load.ts';
import { memory } from './memory.ts';
import type { DevicesConfig, Facts, FingerprintEnv, Fingerprinter, PathStat } from './types.ts';

export type { DevicesConfig, Facts, FingerprintEnv, Fingerprinter, PathStat } from './types.ts';

/** Every fingerprinter, in the order their facts are merged (later ones win). */
export const FINGERPRINTERS: readonly Fingerprinter[] = [memory, cpu, load, devices];

async function pathStat(path: string): Promise<PathStat> {
  const st = await stat(path);
  const kind = st.isFile()
    ? 'file'
    : st.isBlockDevice()
      ? 'block'
      : st.isCharacterDevice()
        ? 'char'
        : 'other';
  const writable = await access(path, constants.W_OK).then(
    () => true,
    () => false,
  );
  // Linux's dev_t: major in bits 8-19 (and 32-43), minor in bits 0-7 and 20-31.
  const rdev = BigInt(st.rdev);
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & 0xfffff000n));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & 0xffffff00n));
  return { kind, size: kind === 'file' ? st.size : 0, major, minor, writable };
}

export const procEnv = (
  contributeBytes?: number,
  devicesConfig?: DevicesConfig,
): FingerprintEnv => ({
  readText: (path) => readFile(path, 'utf8'),
  listDir: (path) => readdir(path),
  stat: pathStat,
  ...(contributeBytes === undefined ? {} : { contributeBytes }),
  ...(devicesConfig === undefined ? {} : { devices: devicesConfig }),
});

export interface Inventory {
  capacity: NodeCapacity;
  load: LoadReport;
  /** This machine's devices; undefined when no fingerprinter reported any (or one failed). */
  devices?: DeviceInventoryItem[];
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
  let deviceList: DeviceInventoryItem[] | undefined;
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
    if (facts.devices) deviceList = [...(deviceList ?? []), ...facts.devices];
  });
  // A failed device probe must not look like "no devices" (that would unpublish them).
  const devicesFailed = errors.some((e) => e.name === 'devices');
  return {
    capacity,
    load: loadReport,
    ...(deviceList === undefined || devicesFailed ? {} : { devices: deviceList }),
    errors,
  };
}
