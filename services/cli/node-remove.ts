/** `clusteradm node remove NAME`: the node leaves the cluster and its range is freed. */
import { type AdminOptions, adminOptions, defineCommand, withAdminClient } from './context.ts';
import { outputOption, toJson } from './output.ts';

export const nodeRemove = defineCommand<AdminOptions, [string]>({
  words: ['node', 'remove'],
  summary: 'remove a node and free its range (it must hold no segments)',
  configure(command) {
    command.argument('<name>', 'node name').addOption(outputOption());
    adminOptions(command);
  },
  async run(context, { args, options }) {
    const [name] = args;
    await withAdminClient(context, options, (client) => client.nodes.remove(name));
    context.stdout(
      options.output === 'json' ? toJson({ name, removed: true }) : `node/${name} removed\n`,
    );
  },
});
