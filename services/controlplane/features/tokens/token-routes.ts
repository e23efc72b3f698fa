/** REST handlers of bootstrap tokens (listed in rest/handlers.ts). */
import type { CreateTokenRequest } from '../../../api/contracts.ts';
import { items, json, noContent, param, type Routes } from '../../rest/route.ts';

export const tokenRoutes: Routes = {
  createToken: async ({ runtime, caller, body }) =>
    json(201, await runtime.tokens.create(caller, body as CreateTokenRequest)),
  listTokens: async ({ runtime, caller }) => json(200, items(await runtime.tokens.list(caller))),
  deleteToken: async (context) => {
    await context.runtime.tokens.delete(context.caller, param(context, 'id'));
    return noContent;
  },
};
