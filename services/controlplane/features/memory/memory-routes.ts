/** REST handlers of the network memory space (listed in rest/handlers.ts). */
import type { AllocateSegmentRequest } from '../../../api/contracts.ts';
import { items, json, noContent, param, type Routes } from '../../rest/route.ts';

export const memoryRoutes: Routes = {
  getMemoryLayout: async ({ runtime, caller }) => json(200, await runtime.memory.layout(caller)),
  allocateSegment: async ({ runtime, caller, body }) =>
    json(201, await runtime.memory.allocateSegment(caller, body as AllocateSegmentRequest)),
  listSegments: async ({ runtime, caller }) =>
    json(200, items(await runtime.memory.listSegments(caller))),
  getSegment: async (context) =>
    json(200, await context.runtime.memory.getSegment(context.caller, param(context, 'id'))),
  freeSegment: async (context) => {
    await context.runtime.memory.freeSegment(context.caller, param(context, 'id'));
    return noContent;
  },
};
