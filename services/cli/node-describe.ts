/** `clusteradm node describe NAME`: everything the control plane knows about one node. */
import { type AdminOptions, adminOptions, defineCommand, withAdminClient } from './context.ts';
import { describeNode } from './node-format.ts';
import { outputOption, toJson } from './output.ts';

export const nodeDescribe = defineCommand<AdminOptions, [string]>({
  words: ['node', 'describe'],
  summary: 'show the details of a node',
  configure(command) {
    command.argument('<name>', 'node name').addOption(outputOption());
    adminOptions(command);
  },
  async run(context, { args, options }) {
    const [name] = args;
    const node = await withAdminClient(context, options, (client) => client.nodes.get(name));
    context.stdout(options.output === 'json' ? toJson(node) : describeNode(node, context.now()));
  },
});
