/** `clusteradm dev unexport NODE/DEV`: stop sharing a device (policy `none`). */
import { type AdminOptions, adminOptions, defineCommand, withAdminClient } from './context.ts';
import { type DeviceRef, parseDeviceArgument } from './device-format.ts';
import { outputOption, toJson } from './output.ts';

export const devUnexport = defineCommand<AdminOptions, [DeviceRef]>({
  words: ['dev', 'unexport'],
  summary: 'stop exporting a device: it disappears from every /remotedev',
  configure(command) {
    command
      .argument('<node/dev>', 'the device, e.g. node-b/disk0', parseDeviceArgument)
      .addOption(outputOption());
    adminOptions(command);
  },
  async run(context, { args: [ref], options }) {
    const device = await withAdminClient(context, options, (client) =>
      client.devices.setExport(ref.node, ref.device, 'none'),
    );
    context.stdout(
      options.output === 'json'
        ? toJson(device)
        : `device/${device.node}/${device.name} unexported\n`,
    );
  },
});
