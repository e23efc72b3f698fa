/** `clusteradm token delete ID`: revokes a bootstrap token (the id, or the whole token). */
import { type AdminOptions, adminOptions, defineCommand, withAdminClient } from './context.ts';
import { outputOption, toJson } from './output.ts';

export const tokenDelete = defineCommand<AdminOptions, [string]>({
  words: ['token', 'delete'],
  summary: 'delete a bootstrap token',
  configure(command) {
    command
      .argument('<id>', 'token id (the part before the dot; a whole token is accepted too)')
      .addOption(outputOption());
    adminOptions(command);
  },
  async run(context, { args, options }) {
    const id = args[0].split('.')[0] as string;
    await withAdminClient(context, options, (client) => client.tokens.delete(id));
    context.stdout(
      options.output === 'json' ? toJson({ id, deleted: true }) : `token ${id} deleted\n`,
    );
  },
});
