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

import type { DeviceView } from '../../../api/contracts.ts';
import {
  applyInventory,
  createDeviceTable,
  type DeviceInventoryItem,
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
import { authorize } from '../../service/authz.ts';
import type { Caller, DeviceApi } from '../../service/contracts.ts';
import { putJson, updateAtomically } from '../../service/optimistic.ts';
import { nodeKeys } from '../nodes/records.ts';
import { deviceKeys, parseDeviceTable, toDeviceView, toDeviceViews } from './records.ts';

export interface DeviceServiceOptions {
  store: Store;
  now: () => number;
  mirror: Mirror;
}

const nodeMissing = (node: string) => new AmalgamError('NODE_NOT_FOUND', node, { field: 'node' });

export class DeviceService implements DeviceApi {
  readonly #store: Store;
  readonly #mirror: Mirror;
  readonly #now: () => number;

  constructor(options: DeviceServiceOptions) {
    this.#store = options.store;
    this.#mirror = options.mirror;
    this.#now = options.now;
  }

  async list(caller: Caller, node?: string): Promise<DeviceView[]> {
    authorize(caller, 'listDevices');
    if (node !== undefined) validateNodeName(node, 'node');
    const mirror = this.#mirror;
    await mirror.sync();
    if (node === undefined) {
      return mirror
        .range(deviceKeys.devices)
        .flatMap((kv) => toDeviceViews(parseDeviceTable(kv.value)));
    }
    if (!mirror.get(nodeKeys.node(node))) throw nodeMissing(node);
    const kv = mirror.get(deviceKeys.deviceTable(node));
    return kv ? toDeviceViews(parseDeviceTable(kv.value)) : [];
  }

  async get(caller: Caller, node: string, device: string): Promise<DeviceView> {
    authorize(caller, 'getDevice');
    validateNodeName(node, 'node');
    validateDeviceName(device, 'device');
    const [record, table] = await Promise.all([
      this.#store.get(nodeKeys.node(node)),
      this.#store.get(deviceKeys.deviceTable(node)),
    ]);
    if (!record) throw nodeMissing(node);
    const found = table ? parseDeviceTable(table.value).devices[device] : undefined;
    if (!found) {
      throw new AmalgamError('DEVICE_NOT_FOUND', `${node}/${device}`, {
        field: 'device',
        node,
        device,
      });
    }
    return toDeviceView(node, found);
  }

  async report(
    caller: Caller,
    node: string,
    devices: DeviceInventoryItem[],
  ): Promise<DeviceView[]> {
    authorize(caller, 'reportDevices', node);
    const items = validateInventory(devices, 'devices');
    return this.#updateTable(
      node,
      (table) => applyInventory(table, items, this.#now()),
      (next) => toDeviceViews(next.table),
    );
  }

  async setExport(
    caller: Caller,
    node: string,
    device: string,
    policy: ExportPolicy,
  ): Promise<DeviceView> {
    authorize(caller, 'setDeviceExport');
    validateNodeName(node, 'node');
    validateDeviceName(device, 'device');
    const wanted = validateExportPolicy(policy, 'policy');
    return this.#updateTable(
      node,
      (table) => setExportPolicy(table, device, wanted, this.#now()),
      (next) => toDeviceView(node, next.device),
    );
  }

  /**
   * One compare-and-swap over `node`'s record (it must exist) and its device
   * table: `change` makes the next table, written only when it changed.
   */
  #updateTable<C extends { table: DeviceTable; changed: boolean }, R>(
    node: string,
    change: (table: DeviceTable) => C,
    result: (next: C) => R,
  ): Promise<R> {
    const nodeKey = nodeKeys.node(node);
    const tableKey = deviceKeys.deviceTable(node);
    return updateAtomically(
      this.#store,
      [nodeKey, tableKey],
      (current) => {
        if (current.get(nodeKey) === undefined) throw nodeMissing(node);
        const next = change(current.get<DeviceTable>(tableKey) ?? createDeviceTable(node));
        const writes = next.changed ? [putJson(tableKey, next.table)] : [];
        return { writes, result: result(next) };
      },
      { mirror: this.#mirror },
    );
  }
}
