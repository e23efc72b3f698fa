/** REST handlers of the nodes feature (listed in rest/handlers.ts). */
import type { HeartbeatRequest, JoinRequest } from '../../../api/contracts.ts';
import { items, json, noContent, param, type Routes } from '../../rest/route.ts';

export const nodeRoutes: Routes = {
  joinCluster: async ({ runtime, body, source }) =>
    json(201, await runtime.nodes.join(body as JoinRequest, source)),
  listNodes: async ({ runtime, caller }) => json(200, items(await runtime.nodes.list(caller))),
  getNode: async (context) =>
    json(200, await context.runtime.nodes.get(context.caller, param(context, 'name'))),
  heartbeatNode: async (context) => {
    const { pageserver, ...load } = context.body as HeartbeatRequest;
    const name = param(context, 'name');
    return json(200, await context.runtime.nodes.heartbeat(context.caller, name, load, pageserver));
  },
  drainNode: async (context) =>
    json(200, await context.runtime.nodes.drain(context.caller, param(context, 'name'))),
  removeNode: async (context) => {
    await context.runtime.nodes.remove(context.caller, param(context, 'name'));
    return noContent;
  },
};
