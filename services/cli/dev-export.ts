/** `clusteradm dev export NODE/DEV --ro|--rw`: share a device with the cluster. */
import { type AdminOptions, adminOptions, defineCommand, withAdminClient } from './context.ts';
import { type DeviceRef, parseDeviceArgument } from './device-format.ts';
import { usageError } from './errors.ts';
import { outputOption, toJson } from './output.ts';

interface Options extends AdminOptions {
  ro?: boolean;
  rw?: boolean;
}

export const devExport = defineCommand<Options, [DeviceRef]>({
  words: ['dev', 'export'],
  summary: 'export a device to every node, read-only (--ro) or read-write (--rw)',
  configure(command) {
    command
      .argument('<node/dev>', 'the device, e.g. node-b/disk0', parseDeviceArgument)
      .option('--ro', 'reads only: writes through /remotedev get EROFS')
      .option('--rw', 'reads and writes (not for a device its node reports read-only)')
      .addOption(outputOption());
    adminOptions(command);
  },
  async run(context, { args: [ref], options }) {
    if (options.ro === options.rw) throw usageError('exactly one of --ro or --rw is required');
    const policy = options.rw ? 'rw' : 'ro';
    const device = await withAdminClient(context, options, (client) =>
      client.devices.setExport(ref.node, ref.device, policy),
    );
    context.stdout(
      options.output === 'json'
        ? toJson(device)
        : `device/${device.node}/${device.name} exported ${device.exportPolicy}\n`,
    );
  },
});
