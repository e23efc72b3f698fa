/** REST handlers of the network device space (listed in rest/handlers.ts). */
import type { DeviceInventory, SetExportRequest } from '../../../api/contracts.ts';
import { items, json, param, type Routes } from '../../rest/route.ts';

export const deviceRoutes: Routes = {
  reportDevices: async (context) => {
    const { devices } = context.body as DeviceInventory;
    const node = param(context, 'name');
    return json(200, items(await context.runtime.devices.report(context.caller, node, devices)));
  },
  listDevices: async ({ runtime, caller, query }) =>
    json(200, items(await runtime.devices.list(caller, query.node))),
  getDevice: async (context) => {
    const [node, device] = [param(context, 'node'), param(context, 'device')];
    return json(200, await context.runtime.devices.get(context.caller, node, device));
  },
  setDeviceExport: async (context) => {
    const [node, device] = [param(context, 'node'), param(context, 'device')];
    const { policy } = context.body as SetExportRequest;
    return json(200, await context.runtime.devices.setExport(context.caller, node, device, policy));
  },
};
