/**
 * `clusteradm token create`: a bootstrap token for `clusteradm join`. By
 * default it joins any number of machines until it expires, as kubeadm's
 * bootstrap tokens do (one token for a whole rack, 24 h); `--max-uses N`
 * limits it (`--max-uses 1` for a token per machine).
 */
import { InvalidArgumentError, Option } from 'commander';
import type { CreatedToken } from '../api/contracts.ts';
import { type AdminOptions, adminOptions, defineCommand, withAdminClient } from './context.ts';
import { joinCommand } from './join-command.ts';
import { outputOption, renderTable, toJson } from './output.ts';
import { formatExpiry, parseDuration } from './units.ts';

interface Options extends AdminOptions {
  ttl: number;
  maxUses?: number;
  description?: string;
  printJoinCommand?: boolean;
}

/** `uses/maxUses`, or `uses/-` when any number is allowed. */
export function formatUses(token: { uses: number; maxUses: number | null }): string {
  return `${token.uses}/${token.maxUses ?? '-'}`;
}

function parseMaxUses(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 1_000_000) {
    throw new InvalidArgumentError('a whole number from 1 to 1000000 is required');
  }
  return n;
}

export function tokenRow(token: CreatedToken, now: number): string[] {
  return [
    token.token,
    formatExpiry(token.expiresAt, now),
    formatUses(token),
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
      .addOption(
        new Option(
          '--max-uses <n>',
          "joins the token allows (default: any number until it expires, as kubeadm's tokens)",
        ).argParser(parseMaxUses),
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
        ...(options.maxUses === undefined ? {} : { maxUses: options.maxUses }),
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
            ['TOKEN', 'EXPIRES', 'USES', 'USAGES', 'DESCRIPTION'],
            [tokenRow(token, context.now())],
          ),
        );
      }
    });
  },
});
