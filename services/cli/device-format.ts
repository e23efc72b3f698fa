/** How devices print, shared by `dev ls|describe|export|unexport`, and how `NODE/DEV` is parsed. */
import { InvalidArgumentError } from 'commander';
import type { DeviceView } from '../api/contracts.ts';
import { parseDeviceRef } from '../core/devices.ts';
import { renderFields } from './output.ts';
import { formatAge, formatBytes } from './units.ts';

export interface DeviceRef {
  node: string;
  device: string;
}

/** `NODE/DEV` (`b/disk0`): the device `/remotedev/b/disk0`. The server checks the names. */
export function parseDeviceArgument(text: string): DeviceRef {
  const ref = parseDeviceRef(text);
  if (!ref) {
    throw new InvalidArgumentError(`not NODE/DEV: ${JSON.stringify(text)} (example: node-b/disk0)`);
  }
  return ref;
}

export const DEVICE_COLUMNS = ['DEVICE', 'KIND', 'SIZE', 'EXPORT', 'STATE', 'PATH', 'AGE'];

function state(device: DeviceView): string {
  if (!device.present) return 'absent';
  return device.readOnly ? 'present,ro' : 'present';
}

export function deviceRow(device: DeviceView, now: number): string[] {
  return [
    `${device.node}/${device.name}`,
    device.kind,
    formatBytes(device.sizeBytes),
    device.exportPolicy,
    state(device),
    device.path,
    formatAge(device.updatedAt, now),
  ];
}

export function describeDevice(device: DeviceView, now: number): string {
  return renderFields([
    ['Device', `${device.node}/${device.name}`],
    ['Remote path', `/remotedev/${device.node}/${device.name}`],
    ['Node', device.node],
    ['Kind', device.kind],
    ['Path on node', device.path],
    ['Size', `${formatBytes(device.sizeBytes)} (${device.sizeBytes} bytes)`],
    ['Read-only', device.readOnly ? 'yes (never served rw)' : 'no'],
    [
      'Device number',
      device.major === null || device.minor === null ? '-' : `${device.major}:${device.minor}`,
    ],
    ['Parent', device.parent ?? '-'],
    ['Partitions', device.partitions.length > 0 ? device.partitions.join(',') : '<none>'],
    ['Export', device.exportPolicy],
    ['Present', device.present ? 'yes' : 'no (its node no longer reports it; policy kept)'],
    ['Updated', `${device.updatedAt} (${formatAge(device.updatedAt, now)} ago)`],
  ]);
}
