/**
 * The network device space in the store: one value per node (its
 * DeviceTable, so an inventory is one CAS), its codec (the only place a table
 * is parsed), the views GET and watch answer with, and the watch view of
 * `devices/`.
 */
import type { DeviceView } from '../../../api/contracts.ts';
import type { DeviceRecord, DeviceTable } from '../../../core/devices.ts';
import { STORE_ROOT } from '../../service/keys.ts';
import type { WatchView } from '../../service/watch-view.ts';

export const deviceKeys = {
  devices: `${STORE_ROOT}/devices/`,
  deviceTable: (node: string) => `${STORE_ROOT}/devices/${node}`,
} as const;

export function parseDeviceTable(raw: string): DeviceTable {
  return JSON.parse(raw) as DeviceTable;
}

export function toDeviceView(node: string, device: DeviceRecord): DeviceView {
  return {
    node,
    name: device.name,
    kind: device.kind,
    path: device.path,
    sizeBytes: device.sizeBytes,
    readOnly: device.readOnly,
    major: device.major,
    minor: device.minor,
    parent: device.parent,
    partitions: device.partitions,
    exportPolicy: device.exportPolicy,
    present: device.present,
    updatedAt: new Date(device.updatedAt).toISOString(),
  };
}

/** Every device of a node's table: what `GET /v1/devices?node=<node>` answers. */
export function toDeviceViews(table: DeviceTable): DeviceView[] {
  return Object.values(table.devices).map((d) => toDeviceView(table.node, d));
}

export const deviceWatchViews: WatchView[] = [
  { root: 'devices/', view: (_key, raw) => toDeviceViews(parseDeviceTable(raw)) },
];
