/** `clusteradm dev ls [NODE]`: every device of the cluster (or of one node) and its export policy. */
import { type AdminOptions, adminOptions, defineCommand, withAdminClient } from './context.ts';
import { DEVICE_COLUMNS, deviceRow } from './device-format.ts';
import { outputOption, renderTable, toJson } from './output.ts';

export const devList = defineCommand<AdminOptions, [string | undefined]>({
  words: ['dev', 'ls'],
  summary: 'list the devices of every node (or of NODE), exported or not',
  configure(command) {
    command.argument('[node]', 'only this node').addOption(outputOption());
    adminOptions(command);
  },
  async run(context, { args: [node], options }) {
    const items = await withAdminClient(context, options, (client) => client.devices.list(node));
    if (options.output === 'json') {
      context.stdout(toJson({ items }));
      return;
    }
    const now = context.now();
    context.stdout(
      renderTable(
        DEVICE_COLUMNS,
        items.map((d) => deviceRow(d, now)),
      ),
    );
  },
});
