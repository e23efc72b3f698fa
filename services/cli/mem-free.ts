/** `clusteradm mem free ID`: frees a segment. */
import { type AdminOptions, adminOptions, defineCommand, withAdminClient } from './context.ts';
import { outputOption, toJson } from './output.ts';

export const memFree = defineCommand<AdminOptions, [string]>({
  words: ['mem', 'free'],
  summary: 'free a segment of network memory',
  configure(command) {
    command.argument('<id>', 'segment id').addOption(outputOption());
    adminOptions(command);
  },
  async run(context, { args, options }) {
    const [id] = args;
    await withAdminClient(context, options, (client) => client.memory.freeSegment(id));
    context.stdout(
      options.output === 'json' ? toJson({ id, freed: true }) : `segment ${id} freed\n`,
    );
  },
});
