/**
 * The network device space: `/remotedev/<node>/<device>`.
 *
 * A device's path is unique because its machine's name is (the join CAS) and
 * because a node's devices live in ONE store value (its DeviceTable): an
 * inventory report and a policy change are each one compare-and-swap over the
 * node's record and that value, so a report of a node being removed, or two
 * writers on one table, can never both win. Only the node itself reports its
 * inventory; only the admin sets a policy (core/devices.ts has the rules).
 */

import type { Caller, ControlPlane, DeviceView } from '../../../api/contracts.ts';
import {
  applyInventory,
  createDeviceTable,
  type DeviceInventoryItem,
  type DeviceRecord,
  type DeviceTable,
  type ExportPolicy,
  setExportPolicy,
  validateDeviceName,
  validateExportPolicy,
  validateInventory,
} from '../../../core/devices.ts';
import { AmalgamError } from '../../../core/errors.ts';
import { validateNodeName } from '../../../core/names.ts';
import type { Mirror } from '../../../store/mirror.ts';
import type { Store } from '../../../store/store.ts';
import { requireAdmin, requireMember, requireSelf } from '../../service/authz.ts';
import { keys } from '../../service/keys.ts';
import { putJson, readJson, updateAtomically } from '../../service/optimistic.ts';
import type { NodeRecord } from '../nodes/node-service.ts';

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

function viewsOf(table: DeviceTable): DeviceView[] {
  return Object.values(table.devices).map((d) => toDeviceView(table.node, d));
}

export interface DeviceServiceOptions {
  store: Store;
  now: () => number;
  mirror: Mirror;
}

export function createDeviceService(options: DeviceServiceOptions): ControlPlane['devices'] {
  const { store, now, mirror } = options;

  function nodeMissing(node: string): AmalgamError {
    return new AmalgamError('NODE_NOT_FOUND', node, { field: 'node' });
  }

  /**
   * One compare-and-swap over `node`'s record (it must exist) and its device
   * table: `change` makes the next table, written only when it changed.
   */
  function updateTable<C extends { table: DeviceTable; changed: boolean }, R>(
    node: string,
    change: (table: DeviceTable) => C,
    result: (next: C) => R,
  ): Promise<R> {
    const tableKey = keys.deviceTable(node);
    return updateAtomically(
      store,
      [keys.node(node), tableKey],
      (current) => {
        if (!current.get<NodeRecord>(keys.node(node))) throw nodeMissing(node);
        const next = change(current.get<DeviceTable>(tableKey) ?? createDeviceTable(node));
        const writes = next.changed ? [putJson(tableKey, next.table)] : [];
        return { writes, result: result(next) };
      },
      { mirror },
    );
  }

  return {
    async list(caller: Caller, node?: string): Promise<DeviceView[]> {
      requireMember(caller);
      if (node !== undefined) validateNodeName(node, 'node');
      await mirror.sync();
      if (node === undefined) {
        return mirror
          .range(keys.devices)
          .flatMap((kv) => viewsOf(JSON.parse(kv.value) as DeviceTable));
      }
      if (!mirror.get(keys.node(node))) throw nodeMissing(node);
      const kv = mirror.get(keys.deviceTable(node));
      return kv ? viewsOf(JSON.parse(kv.value) as DeviceTable) : [];
    },

    async get(caller: Caller, node: string, device: string): Promise<DeviceView> {
      requireMember(caller);
      validateNodeName(node, 'node');
      validateDeviceName(device, 'device');
      const [record, table] = await Promise.all([
        readJson<NodeRecord>(store, keys.node(node)),
        readJson<DeviceTable>(store, keys.deviceTable(node)),
      ]);
      if (!record) throw nodeMissing(node);
      const found = table?.devices[device];
      if (!found) {
        throw new AmalgamError('DEVICE_NOT_FOUND', `${node}/${device}`, {
          field: 'device',
          node,
          device,
        });
      }
      return toDeviceView(node, found);
    },

    async report(
      caller: Caller,
      node: string,
      devices: DeviceInventoryItem[],
    ): Promise<DeviceView[]> {
      requireSelf(caller, node);
      const items = validateInventory(devices, 'devices');
      return updateTable(
        node,
        (table) => applyInventory(table, items, now()),
        (next) => viewsOf(next.table),
      );
    },

    async setExport(
      caller: Caller,
      node: string,
      device: string,
      policy: ExportPolicy,
    ): Promise<DeviceView> {
      requireAdmin(caller);
      validateNodeName(node, 'node');
      validateDeviceName(device, 'device');
      const wanted = validateExportPolicy(policy, 'policy');
      return updateTable(
        node,
        (table) => setExportPolicy(table, device, wanted, now()),
        (next) => toDeviceView(node, next.device),
      );
    },
  };
}
