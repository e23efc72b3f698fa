/** `clusteradm dev describe NODE/DEV`: everything the control plane knows about one device. */
import { type AdminOptions, adminOptions, defineCommand, withAdminClient } from './context.ts';
import { type DeviceRef, describeDevice, parseDeviceArgument } from './device-format.ts';
import { outputOption, toJson } from './output.ts';

export const devDescribe = defineCommand<AdminOptions, [DeviceRef]>({
  words: ['dev', 'describe'],
  summary: 'show the details of a device (/remotedev/NODE/DEV)',
  configure(command) {
    command.argument('<node/dev>', 'the device, e.g. node-b/disk0', parseDeviceArgument);
    command.addOption(outputOption());
    adminOptions(command);
  },
  async run(context, { args: [ref], options }) {
    const device = await withAdminClient(context, options, (client) =>
      client.devices.get(ref.node, ref.device),
    );
    context.stdout(
      options.output === 'json' ? toJson(device) : describeDevice(device, context.now()),
    );
  },
});
