/** `clusteradm user revoke NAME`: the user's certificate is refused from now on (the name stays taken). */
import { type AdminOptions, adminOptions, defineCommand, withAdminClient } from './context.ts';
import { outputOption, toJson } from './output.ts';

export const userRevoke = defineCommand<AdminOptions, [string]>({
  words: ['user', 'revoke'],
  summary: "revoke a user's credential",
  configure(command) {
    command.argument('<name>', 'the user name').addOption(outputOption());
    adminOptions(command);
  },
  async run(context, { args: [name], options }) {
    const user = await withAdminClient(context, options, (client) => client.users.revoke(name));
    context.stdout(options.output === 'json' ? toJson(user) : `user ${name} revoked\n`);
  },
});
