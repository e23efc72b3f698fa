/**
 * The network device space: `/remotedev/<machine>/<dev>`.
 *
 * A machine is a node (its name is unique in the cluster, claimed by the join
 * CAS). Each node reports its devices (its inventory); clusterd keeps one
 * record per device with the export policy the admin chose: `none` (the
 * default: nothing is shared that its owner did not choose to share), `ro` or
 * `rw`. Only the owning node changes what a device is (name, size, path);
 * only the admin changes its policy. This file is the pure part: name rules,
 * validation, and the next device table for an inventory or a policy change.
 * Every check throws INVALID_ARGUMENT naming the field.
 */
import { AmalgamError } from './errors.ts';

export type DeviceKind = 'block' | 'char' | 'file';
export type ExportPolicy = 'none' | 'ro' | 'rw';

export const DEVICE_KINDS: readonly DeviceKind[] = ['block', 'char', 'file'];
export const EXPORT_POLICIES: readonly ExportPolicy[] = ['none', 'ro', 'rw'];

export const DEVICE_NAME_MAX_LENGTH = 63;
export const DEVICE_PATH_MAX_LENGTH = 1024;
/** One node's table is one store value: a bound keeps it far below etcd's request limit. */
export const MAX_DEVICES_PER_NODE = 256;
export const MAX_PARTITIONS = 128;
/** 2^53 - 1: sizes stay safe integers (8 PiB). */
export const MAX_DEVICE_BYTES = Number.MAX_SAFE_INTEGER;

/**
 * A device name is one path component of `/remotedev/<machine>/<dev>` and one
 * word of the native daemons' files: 1-63 characters of lowercase a-z, 0-9,
 * '.', '_' and '-', starting and ending with a letter or digit (`sda`,
 * `nvme0n1p2`, `dm-0`, `disk0`). So never `.`, `..`, a slash or a space; and
 * always a name the page server's `--devices` and remotedev-fuse's `--tree`
 * files accept (`[a-z0-9][a-z0-9._-]{0,62}`).
 */
const DEVICE_NAME = /^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$/;
/** An absolute path without whitespace or control characters (the daemons' files are space-separated lines). */
function isDevicePath(path: string): boolean {
  if (!path.startsWith('/') || /\s/.test(path)) return false;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return false;
  }
  return true;
}

/** What a node reports about one of its devices (the API's request shape). */
export interface DeviceInventoryItem {
  name: string;
  kind: DeviceKind;
  /** The device on its own machine: `/dev/sda`, or the file or image declared as a device. */
  path: string;
  sizeBytes: number;
  /** The owner cannot write it (sysfs `ro`, or declared read-only): never served `rw`. */
  readOnly: boolean;
  /** Device number; absent for a file. */
  major?: number;
  minor?: number;
  /** The whole disk a partition belongs to; absent otherwise. */
  parent?: string;
  /** The partitions of a whole disk (their names). */
  partitions: string[];
}

/** A reported device after validation: every field present, `null` for none. */
export interface DeviceFacts {
  name: string;
  kind: DeviceKind;
  path: string;
  sizeBytes: number;
  readOnly: boolean;
  major: number | null;
  minor: number | null;
  parent: string | null;
  partitions: string[];
}

/** A device as clusterd keeps it: what its node last reported, plus the admin's policy. */
export interface DeviceRecord extends DeviceFacts {
  exportPolicy: ExportPolicy;
  /** False once the node's inventory no longer lists it (its policy is kept until it returns). */
  present: boolean;
  /** ms since the epoch: the last change of the record (inventory or policy). */
  updatedAt: number;
}

/** One node's devices, by name: one store value, so an inventory is one CAS. */
export interface DeviceTable {
  node: string;
  devices: Record<string, DeviceRecord>;
}

function invalid(field: string, rule: string, reason: string): AmalgamError {
  return new AmalgamError('INVALID_ARGUMENT', `${field}: ${rule}`, { field, reason });
}

export function isValidDeviceName(name: unknown): name is string {
  return (
    typeof name === 'string' && name.length <= DEVICE_NAME_MAX_LENGTH && DEVICE_NAME.test(name)
  );
}

export function validateDeviceName(name: unknown, field = 'device'): asserts name is string {
  if (typeof name !== 'string') throw invalid(field, 'a string is required', 'type');
  if (name.length === 0 || name.length > DEVICE_NAME_MAX_LENGTH) {
    throw invalid(field, `1 to ${DEVICE_NAME_MAX_LENGTH} characters are required`, 'length');
  }
  if (!DEVICE_NAME.test(name)) {
    throw invalid(
      field,
      "only lowercase a-z, 0-9, '.', '_' and '-' are allowed, starting and ending with a letter or digit",
      'format',
    );
  }
}

export function validateExportPolicy(policy: unknown, field = 'policy'): ExportPolicy {
  if (!EXPORT_POLICIES.includes(policy as ExportPolicy)) {
    throw invalid(field, `one of ${EXPORT_POLICIES.join(', ')} is required`, 'value');
  }
  return policy as ExportPolicy;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function deviceNumber(value: unknown, field: string): number | null {
  if (value === undefined || value === null) return null;
  if (!Number.isSafeInteger(value) || (value as number) < 0 || (value as number) > 0xfffff) {
    throw invalid(field, 'an integer from 0 to 1048575 (or absent)', 'value');
  }
  return value as number;
}

/** Checks one reported device and returns it with exactly the known fields. */
export function validateInventoryItem(item: unknown, field: string): DeviceFacts {
  if (!isPlainObject(item)) throw invalid(field, 'an object is required', 'type');
  validateDeviceName(item.name, `${field}.name`);
  if (!DEVICE_KINDS.includes(item.kind as DeviceKind)) {
    throw invalid(`${field}.kind`, `one of ${DEVICE_KINDS.join(', ')} is required`, 'value');
  }
  const path = item.path;
  if (typeof path !== 'string' || path.length > DEVICE_PATH_MAX_LENGTH || !isDevicePath(path)) {
    throw invalid(
      `${field}.path`,
      `an absolute path of at most ${DEVICE_PATH_MAX_LENGTH} characters without whitespace is required`,
      'format',
    );
  }
  const size = item.sizeBytes;
  if (!Number.isSafeInteger(size) || (size as number) < 0) {
    throw invalid(`${field}.sizeBytes`, `an integer from 0 to ${MAX_DEVICE_BYTES}`, 'value');
  }
  if (typeof item.readOnly !== 'boolean') {
    throw invalid(`${field}.readOnly`, 'a boolean is required', 'type');
  }
  const major = deviceNumber(item.major, `${field}.major`);
  const minor = deviceNumber(item.minor, `${field}.minor`);
  const parent = item.parent ?? null;
  if (parent !== null) validateDeviceName(parent, `${field}.parent`);
  const partitions = item.partitions;
  if (!Array.isArray(partitions) || partitions.length > MAX_PARTITIONS) {
    throw invalid(`${field}.partitions`, `a list of at most ${MAX_PARTITIONS} names`, 'length');
  }
  for (const [i, p] of partitions.entries()) validateDeviceName(p, `${field}.partitions[${i}]`);
  return {
    name: item.name,
    kind: item.kind as DeviceKind,
    path,
    sizeBytes: size as number,
    readOnly: item.readOnly,
    major,
    minor,
    parent: parent as string | null,
    partitions: [...(partitions as string[])],
  };
}

/** Checks a whole inventory: a list of at most MAX_DEVICES_PER_NODE devices with distinct names. */
export function validateInventory(items: unknown, field = 'devices'): DeviceFacts[] {
  if (!Array.isArray(items)) throw invalid(field, 'a list is required', 'type');
  if (items.length > MAX_DEVICES_PER_NODE) {
    throw invalid(field, `at most ${MAX_DEVICES_PER_NODE} devices per node`, 'length');
  }
  const seen = new Set<string>();
  return items.map((raw, i) => {
    const item = validateInventoryItem(raw, `${field}[${i}]`);
    if (seen.has(item.name)) {
      throw invalid(`${field}[${i}].name`, `${item.name} is listed twice`, 'duplicate');
    }
    seen.add(item.name);
    return item;
  });
}

export function createDeviceTable(node: string): DeviceTable {
  return { node, devices: {} };
}

const sameItem = (a: DeviceFacts, b: DeviceFacts): boolean =>
  a.kind === b.kind &&
  a.path === b.path &&
  a.sizeBytes === b.sizeBytes &&
  a.readOnly === b.readOnly &&
  a.major === b.major &&
  a.minor === b.minor &&
  a.parent === b.parent &&
  a.partitions.length === b.partitions.length &&
  a.partitions.every((p, i) => p === b.partitions[i]);

/**
 * The table after the node reported `items` (its whole inventory). A device
 * keeps its policy; a new one starts at `none`; a device no longer reported is
 * dropped when its policy is `none`, else kept with `present: false` (an
 * unplugged disk does not lose what the admin chose). `changed` is false when
 * nothing differs (no write needed).
 */
export function applyInventory(
  table: DeviceTable,
  items: readonly DeviceFacts[],
  now: number,
): { table: DeviceTable; changed: boolean } {
  const devices: Record<string, DeviceRecord> = {};
  let changed = false;
  const reported = new Set<string>();
  for (const item of items) {
    reported.add(item.name);
    const prev = table.devices[item.name];
    if (prev?.present && sameItem(prev, item)) {
      devices[item.name] = prev;
      continue;
    }
    changed = true;
    devices[item.name] = {
      ...item,
      partitions: [...item.partitions],
      exportPolicy: prev?.exportPolicy ?? 'none',
      present: true,
      updatedAt: now,
    };
  }
  for (const [name, prev] of Object.entries(table.devices)) {
    if (reported.has(name)) continue;
    if (prev.exportPolicy === 'none') {
      changed = true;
      continue;
    }
    if (prev.present) {
      changed = true;
      devices[name] = { ...prev, present: false, updatedAt: now };
    } else devices[name] = prev;
  }
  return { table: { node: table.node, devices: sortedByName(devices) }, changed };
}

function sortedByName(devices: Record<string, DeviceRecord>): Record<string, DeviceRecord> {
  return Object.fromEntries(Object.entries(devices).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/**
 * The table after the admin set `name`'s policy. DEVICE_NOT_FOUND when the
 * node never reported it; a read-only device is never `rw`, and a character
 * device (a stream, no offsets or size) is never exported.
 */
export function setExportPolicy(
  table: DeviceTable,
  name: string,
  policy: ExportPolicy,
  now: number,
): { table: DeviceTable; device: DeviceRecord; changed: boolean } {
  const prev = table.devices[name];
  if (!prev) {
    throw new AmalgamError('DEVICE_NOT_FOUND', `${table.node}/${name}`, {
      field: 'device',
      node: table.node,
      device: name,
    });
  }
  if (policy !== 'none' && prev.kind === 'char') {
    throw invalid('policy', 'a character device cannot be exported (no size, no offsets)', 'kind');
  }
  if (policy === 'rw' && prev.readOnly) {
    throw invalid(
      'policy',
      `${table.node}/${name} is read-only on its machine: export it ro`,
      'ro',
    );
  }
  if (prev.exportPolicy === policy) return { table, device: prev, changed: false };
  const device: DeviceRecord = { ...prev, exportPolicy: policy, updatedAt: now };
  return {
    table: { node: table.node, devices: { ...table.devices, [name]: device } },
    device,
    changed: true,
  };
}

/**
 * How a device is served: the admin's policy, lowered to `ro` when its owner
 * cannot write it; `none` while the device is absent.
 */
export function effectivePolicy(device: DeviceRecord): ExportPolicy {
  if (!device.present || device.exportPolicy === 'none') return 'none';
  return device.readOnly ? 'ro' : device.exportPolicy;
}

/** `NODE/DEV` as the CLI writes a device; undefined when it is not of that form. */
export function parseDeviceRef(ref: string): { node: string; device: string } | undefined {
  const slash = ref.indexOf('/');
  if (slash <= 0 || slash === ref.length - 1 || slash !== ref.lastIndexOf('/')) return undefined;
  return { node: ref.slice(0, slash), device: ref.slice(slash + 1) };
}
