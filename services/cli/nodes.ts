/** `clusteradm nodes`: every node with its state and range of the network memory space. */
import { type AdminOptions, adminOptions, defineCommand, withAdminClient } from './context.ts';
import { NODE_COLUMNS, nodeRow } from './node-format.ts';
import { outputOption, renderTable, toJson } from './output.ts';

export const nodesList = defineCommand<AdminOptions>({
  words: ['nodes'],
  summary: 'list the nodes of the cluster',
  configure(command) {
    command.addOption(outputOption());
    adminOptions(command);
  },
  async run(context, { options }) {
    const items = await withAdminClient(context, options, (client) => client.nodes.list());
    if (options.output === 'json') {
      context.stdout(toJson({ items }));
      return;
    }
    const now = context.now();
    context.stdout(
      renderTable(
        NODE_COLUMNS,
        items.map((node) => nodeRow(node, now)),
      ),
    );
  },
});
