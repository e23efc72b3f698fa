/** REST handlers of users (listed in rest/handlers.ts). */
import type { CreateUserRequest } from '../../../api/contracts.ts';
import { items, json, param, type Routes } from '../../rest/route.ts';

export const userRoutes: Routes = {
  createUser: async ({ runtime, caller, body }) =>
    json(201, await runtime.users.create(caller, body as CreateUserRequest)),
  listUsers: async ({ runtime, caller }) => json(200, items(await runtime.users.list(caller))),
  revokeUser: async (context) =>
    json(200, await context.runtime.users.revoke(context.caller, param(context, 'name'))),
};
