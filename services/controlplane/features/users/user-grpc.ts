/** gRPC methods of the Users service (listed in grpc/handlers.ts). */
import type { CreateUserRequest, UserRole } from '../../../api/contracts.ts';
import { items, type ServiceMethods, str } from '../../grpc/method.ts';

function createUserRequest(request: Record<string, unknown>): CreateUserRequest {
  return { name: str(request.name), role: str(request.role) as UserRole, csr: str(request.csr) };
}

export const userMethods: ServiceMethods = {
  Create: { handle: (runtime, caller, r) => runtime.users.create(caller, createUserRequest(r)) },
  List: { handle: async (runtime, caller) => items(await runtime.users.list(caller)) },
  Revoke: { handle: (runtime, caller, r) => runtime.users.revoke(caller, str(r.name)) },
};
