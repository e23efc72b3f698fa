/** gRPC methods of the Memory service (listed in grpc/handlers.ts). */
import type { AllocateSegmentRequest } from '../../../api/contracts.ts';
import type { Placement } from '../../../core/segments.ts';
import { EMPTY, items, message, present, type ServiceMethods, str } from '../../grpc/method.ts';

function placement(value: unknown): Placement | undefined {
  const p = message<{ mode?: string; node?: string }>(value);
  if (!p) return undefined;
  return (p.node === undefined ? { mode: p.mode } : { mode: p.mode, node: p.node }) as Placement;
}

function allocateRequest(request: Record<string, unknown>): AllocateSegmentRequest {
  const out: AllocateSegmentRequest = { size: request.size as number };
  const p = placement(request.placement);
  if (p) out.placement = p;
  const id = present(request.id as string | undefined);
  if (id !== undefined) out.id = id;
  return out;
}

export const memoryMethods: ServiceMethods = {
  GetLayout: { handle: (runtime, caller) => runtime.memory.layout(caller) },
  AllocateSegment: {
    handle: (runtime, caller, r) => runtime.memory.allocateSegment(caller, allocateRequest(r)),
  },
  ListSegments: {
    handle: async (runtime, caller) => items(await runtime.memory.listSegments(caller)),
  },
  GetSegment: { handle: (runtime, caller, r) => runtime.memory.getSegment(caller, str(r.id)) },
  FreeSegment: {
    handle: async (runtime, caller, r) => {
      await runtime.memory.freeSegment(caller, str(r.id));
      return EMPTY;
    },
  },
};
