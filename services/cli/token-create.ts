/** `clusteradm token create`: a bootstrap token for `clusteradm join`. */
import { Option } from 'commander';
import type { CreatedToken } from '../api/contracts.ts';
import { type AdminOptions, adminOptions, defineCommand, withAdminClient } from './context.ts';
import { joinCommand } from './join-command.ts';
import { outputOption, renderTable, toJson } from './output.ts';
import { formatExpiry, parseDuration } from './units.ts';

interface Options extends AdminOptions {
  ttl: number;
  description?: string;
  printJoinCommand?: boolean;
}

export function tokenRow(token: CreatedToken, now: number): string[] {
  return [
    token.token,
    formatExpiry(token.expiresAt, now),
    token.usages.join(','),
    token.description,
  ];
}

export const tokenCreate = defineCommand<Options>({
  words: ['token', 'create'],
  summary: 'create a bootstrap token for joining nodes (shown once)',
  configure(command) {
    command
      .addOption(
        new Option('--ttl <duration>', 'lifetime: 90s, 15m, 24h, 7d, 1h30m')
          .argParser(parseDuration)
          .default(86400, '24h'),
      )
      .option('--description <text>', 'what the token is for')
      .option('--print-join-command', 'print the whole `clusteradm join` command instead')
      .addOption(outputOption());
    adminOptions(command);
  },
  async run(context, { options }) {
    await withAdminClient(context, options, async (client, server) => {
      const token = await client.tokens.create({
        ttlSeconds: options.ttl,
        ...(options.description === undefined ? {} : { description: options.description }),
      });
      if (options.printJoinCommand) {
        const { caCertHash } = await client.cluster.info();
        context.stdout(`${joinCommand(server[0] as string, token.token, caCertHash)}\n`);
      } else if (options.output === 'json') {
        context.stdout(toJson(token));
      } else {
        context.stdout(
          renderTable(
            ['TOKEN', 'EXPIRES', 'USAGES', 'DESCRIPTION'],
            [tokenRow(token, context.now())],
          ),
        );
      }
    });
  },
});
