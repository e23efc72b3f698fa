/** gRPC methods of the Nodes service (listed in grpc/handlers.ts). */
import type {
  JoinRequest,
  LoadReport,
  NodeCapacity,
  PageServerEndpoint,
} from '../../../api/contracts.ts';
import { EMPTY, items, message, type ServiceMethods, str } from '../../grpc/method.ts';

function joinRequest(request: Record<string, unknown>): JoinRequest {
  const out = {
    token: str(request.token),
    name: str(request.name),
    csr: str(request.csr),
    capacity: message<NodeCapacity>(request.capacity),
  } as JoinRequest;
  const roles = request.roles as string[] | undefined;
  if (roles && roles.length > 0) out.roles = roles;
  const labels = request.labels as Record<string, string> | undefined;
  if (labels && Object.keys(labels).length > 0) out.labels = labels;
  return out;
}

export const nodeMethods: ServiceMethods = {
  Join: {
    anonymous: true,
    handle: (runtime, _caller, r, source) => runtime.nodes.join(joinRequest(r), source),
  },
  List: { handle: async (runtime, caller) => items(await runtime.nodes.list(caller)) },
  Get: { handle: (runtime, caller, r) => runtime.nodes.get(caller, str(r.name)) },
  Heartbeat: {
    handle: (runtime, caller, r) =>
      runtime.nodes.heartbeat(
        caller,
        str(r.name),
        message<LoadReport>(r.load) as LoadReport,
        message<PageServerEndpoint>(r.pageserver),
      ),
  },
  Drain: { handle: (runtime, caller, r) => runtime.nodes.drain(caller, str(r.name)) },
  Remove: {
    handle: async (runtime, caller, r) => {
      await runtime.nodes.remove(caller, str(r.name));
      return EMPTY;
    },
  },
};
