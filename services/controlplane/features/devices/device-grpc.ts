/** gRPC methods of the Devices service (listed in grpc/handlers.ts). */
import type { DeviceView, ExportPolicy } from '../../../api/contracts.ts';
import type { DeviceInventoryItem } from '../../../core/devices.ts';
import { message, present, type ServiceMethods, str } from '../../grpc/method.ts';

function inventoryItem(value: unknown): DeviceInventoryItem {
  const r = (message<Record<string, unknown>>(value) ?? {}) as Record<string, unknown>;
  return {
    name: str(r.name),
    kind: str(r.kind),
    path: str(r.path),
    sizeBytes: r.sizeBytes,
    readOnly: r.readOnly,
    partitions: Array.isArray(r.partitions) ? r.partitions : [],
    ...(present(r.major) === undefined ? {} : { major: r.major }),
    ...(present(r.minor) === undefined ? {} : { minor: r.minor }),
    ...(present(r.parent) === undefined ? {} : { parent: r.parent }),
  } as DeviceInventoryItem;
}

/** A DeviceView as the proto's Device: null members are left unset. */
function deviceToProto(view: DeviceView): Record<string, unknown> {
  const { major, minor, parent, ...rest } = view;
  return {
    ...rest,
    ...(major === null ? {} : { major }),
    ...(minor === null ? {} : { minor }),
    ...(parent === null ? {} : { parent }),
  };
}
const deviceItems = (list: readonly DeviceView[]) => ({ items: list.map(deviceToProto) });

export const deviceMethods: ServiceMethods = {
  List: {
    handle: async (runtime, caller, r) =>
      deviceItems(await runtime.devices.list(caller, present(r.node as string | undefined))),
  },
  Get: {
    handle: async (runtime, caller, r) =>
      deviceToProto(await runtime.devices.get(caller, str(r.node), str(r.device))),
  },
  Report: {
    handle: async (runtime, caller, r) => {
      const devices = (Array.isArray(r.devices) ? r.devices : []).map(inventoryItem);
      return deviceItems(await runtime.devices.report(caller, str(r.name), devices));
    },
  },
  SetExport: {
    handle: async (runtime, caller, r) => {
      const policy = str(r.policy) as ExportPolicy;
      return deviceToProto(
        await runtime.devices.setExport(caller, str(r.node), str(r.device), policy),
      );
    },
  },
};
