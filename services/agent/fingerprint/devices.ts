/**
 * Devices: the block devices of `/sys/class/block` (size from `size` in
 * 512-byte sectors, `dev` as major:minor, the `ro` flag, partitions and their
 * disk), the character devices the config selects, and the files or images
 * the config declares as devices (how tests give a machine a disk). Names
 * that cannot be a `/remotedev/<machine>/<dev>` component are left out, and
 * so are block devices of size 0 (an unbound loop device, a drive without a
 * medium): nothing there to serve.
 */

import type { DeviceInventoryItem } from '../../api/contracts.ts';
import { isValidDeviceName, MAX_DEVICES_PER_NODE, MAX_PARTITIONS } from '../../core/devices.ts';
import type { DevicesConfig, FingerprintEnv, Fingerprinter } from './types.ts';

export const SYS_BLOCK = '/sys/class/block';
const SECTOR = 512;

async function optionalText(env: FingerprintEnv, path: string): Promise<string | undefined> {
  try {
    return (await env.readText(path)).trim();
  } catch {
    return undefined;
  }
}

function parseDevNumber(text: string | undefined): { major?: number; minor?: number } {
  const m = /^(\d+):(\d+)$/.exec(text ?? '');
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : {};
}

/** Every block device of sysfs, with its partitions and their disk. */
export async function blockDevices(env: FingerprintEnv): Promise<DeviceInventoryItem[]> {
  if (!env.listDir) return [];
  const names = (await env.listDir(SYS_BLOCK)).filter(isValidDeviceName).sort();
  const known = new Set(names);
  const found = await Promise.all(
    names.map(async (name) => {
      const base = `${SYS_BLOCK}/${name}`;
      const [size, dev, ro, partition] = await Promise.all([
        optionalText(env, `${base}/size`),
        optionalText(env, `${base}/dev`),
        optionalText(env, `${base}/ro`),
        optionalText(env, `${base}/partition`),
      ]);
      const sectors = Number(size);
      if (!Number.isSafeInteger(sectors) || sectors <= 0) return undefined;
      // A disk's directory holds one directory per partition.
      const entries = partition === undefined ? await env.listDir?.(base).catch(() => []) : [];
      const item: DeviceInventoryItem = {
        name,
        kind: 'block',
        path: `/dev/${name}`,
        sizeBytes: sectors * SECTOR,
        readOnly: ro === '1',
        ...parseDevNumber(dev),
        partitions: (entries ?? [])
          .filter((e) => e !== name && known.has(e))
          .sort()
          .slice(0, MAX_PARTITIONS),
      };
      return item;
    }),
  );
  const devices = found.filter((d): d is DeviceInventoryItem => d !== undefined);
  for (const disk of devices) {
    disk.partitions = disk.partitions.filter((p) => devices.some((d) => d.name === p));
    for (const p of disk.partitions) {
      const part = devices.find((d) => d.name === p);
      if (part) part.parent = disk.name;
    }
  }
  return devices;
}

const baseName = (path: string): string => path.slice(path.lastIndexOf('/') + 1);

/** The character devices the config selects, by path (size 0: a stream). */
export async function charDevices(
  env: FingerprintEnv,
  paths: readonly string[],
): Promise<DeviceInventoryItem[]> {
  if (!env.stat) return [];
  const out: DeviceInventoryItem[] = [];
  for (const path of paths) {
    const name = baseName(path);
    if (!isValidDeviceName(name))
      throw new Error(`char device ${path}: ${name} is not a device name`);
    const st = await env.stat(path);
    if (st.kind !== 'char') throw new Error(`${path} is not a character device`);
    out.push({
      name,
      kind: 'char',
      path,
      sizeBytes: 0,
      readOnly: !st.writable,
      major: st.major,
      minor: st.minor,
      partitions: [],
    });
  }
  return out;
}

/** Files, images or device nodes declared in the config, under the declared name. */
export async function declaredDevices(
  env: FingerprintEnv,
  declared: NonNullable<DevicesConfig['declared']>,
): Promise<DeviceInventoryItem[]> {
  if (!env.stat) return [];
  const out: DeviceInventoryItem[] = [];
  for (const d of declared) {
    const st = await env.stat(d.path);
    if (st.kind !== 'file' && st.kind !== 'block') {
      throw new Error(`declared device ${d.name}: ${d.path} is neither a file nor a block device`);
    }
    let size = st.size;
    if (st.kind === 'block') {
      size = Number(await env.readText(`/sys/dev/block/${st.major}:${st.minor}/size`)) * SECTOR;
    }
    out.push({
      name: d.name,
      kind: st.kind,
      path: d.path,
      sizeBytes: size,
      readOnly: d.readOnly === true || !st.writable,
      ...(st.kind === 'block' ? { major: st.major, minor: st.minor } : {}),
      partitions: [],
    });
  }
  return out;
}

export const devices: Fingerprinter = {
  name: 'devices',
  async probe(env) {
    const config = env.devices ?? {};
    const [block, chars, declared] = await Promise.all([
      config.block === false ? [] : blockDevices(env),
      charDevices(env, config.char ?? []),
      declaredDevices(env, config.declared ?? []),
    ]);
    // A declared name wins over a discovered one (the admin said so), a selected one over sysfs.
    const byName = new Map<string, DeviceInventoryItem>();
    for (const d of [...declared, ...chars, ...block])
      if (!byName.has(d.name)) byName.set(d.name, d);
    // The control plane keeps at most MAX_DEVICES_PER_NODE: declared ones first.
    return {
      devices: [...byName.values()]
        .slice(0, MAX_DEVICES_PER_NODE)
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    };
  },
};
