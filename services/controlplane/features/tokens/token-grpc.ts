/** gRPC methods of the Tokens service (listed in grpc/handlers.ts). */
import type { CreateTokenRequest, TokenUsage } from '../../../api/contracts.ts';
import { EMPTY, items, present, type ServiceMethods, str } from '../../grpc/method.ts';

function createTokenRequest(request: Record<string, unknown>): CreateTokenRequest {
  const out: CreateTokenRequest = {};
  const ttl = present(request.ttlSeconds as number | undefined);
  if (ttl !== undefined) out.ttlSeconds = ttl;
  const description = present(request.description as string | undefined);
  if (description !== undefined) out.description = description;
  const usages = request.usages as TokenUsage[] | undefined;
  if (usages && usages.length > 0) out.usages = usages;
  return out;
}

export const tokenMethods: ServiceMethods = {
  Create: {
    handle: (runtime, caller, r) => runtime.tokens.create(caller, createTokenRequest(r)),
  },
  List: { handle: async (runtime, caller) => items(await runtime.tokens.list(caller)) },
  Delete: {
    handle: async (runtime, caller, r) => {
      await runtime.tokens.delete(caller, str(r.id));
      return EMPTY;
    },
  },
};
