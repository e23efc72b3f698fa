/** `clusteradm token list`: the bootstrap tokens (ids only; secrets are never shown again). */
import { type AdminOptions, adminOptions, defineCommand, withAdminClient } from './context.ts';
import { outputOption, renderTable, toJson } from './output.ts';
import { formatAge, formatExpiry } from './units.ts';

export const tokenList = defineCommand<AdminOptions>({
  words: ['token', 'list'],
  summary: 'list bootstrap tokens',
  configure(command) {
    command.addOption(outputOption());
    adminOptions(command);
  },
  async run(context, { options }) {
    const items = await withAdminClient(context, options, (client) => client.tokens.list());
    if (options.output === 'json') {
      context.stdout(toJson({ items }));
      return;
    }
    const now = context.now();
    context.stdout(
      renderTable(
        ['ID', 'EXPIRES', 'USAGES', 'AGE', 'DESCRIPTION'],
        items.map((t) => [
          t.id,
          formatExpiry(t.expiresAt, now),
          t.usages.join(','),
          formatAge(t.createdAt, now),
          t.description,
        ]),
      ),
    );
  },
});
