/** `clusteradm node drain NAME`: no new placements on the node; what it holds stays until moved. */
import { type AdminOptions, adminOptions, defineCommand, withAdminClient } from './context.ts';
import { outputOption, toJson } from './output.ts';

export const nodeDrain = defineCommand<AdminOptions, [string]>({
  words: ['node', 'drain'],
  summary: 'mark a node Draining: nothing new is placed on it',
  configure(command) {
    command.argument('<name>', 'node name').addOption(outputOption());
    adminOptions(command);
  },
  async run(context, { args, options }) {
    const [name] = args;
    const node = await withAdminClient(context, options, (client) => client.nodes.drain(name));
    context.stdout(
      options.output === 'json'
        ? toJson(node)
        : `node/${node.name} drained (state ${node.state})\n`,
    );
  },
});
