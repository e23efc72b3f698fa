/** `clusteradm user list`: every user, revoked ones included. */
import { defineListCommand } from './list-command.ts';
import { formatAge } from './units.ts';

export const userList = defineListCommand({
  words: ['user', 'list'],
  summary: 'list users and their roles',
  fetch: (client) => client.users.list(),
  columns: ['NAME', 'ROLE', 'STATUS', 'AGE', 'IDENTITY'],
  row: (u, now) => [
    u.name,
    u.role,
    u.revoked ? 'revoked' : 'active',
    formatAge(u.createdAt, now),
    u.identity,
  ],
});
