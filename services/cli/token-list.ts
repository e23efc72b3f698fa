/** `clusteradm token list`: the bootstrap tokens (ids only; secrets are never shown again). */
import { defineListCommand } from './list-command.ts';
import { formatUses } from './token-create.ts';
import { formatAge, formatExpiry } from './units.ts';

export const tokenList = defineListCommand({
  words: ['token', 'list'],
  summary: 'list bootstrap tokens',
  fetch: (client) => client.tokens.list(),
  columns: ['ID', 'EXPIRES', 'USES', 'USAGES', 'AGE', 'DESCRIPTION'],
  row: (t, now) => [
    t.id,
    formatExpiry(t.expiresAt, now),
    formatUses(t),
    t.usages.join(','),
    formatAge(t.createdAt, now),
    t.description,
  ],
});
