/**
 * The typed client of clusterd's public API, used by clusteradm, the agent
 * and the tests: `createClient` picks the door (REST by default, or gRPC);
 * what it answers is the same `AmalgamClient` (amalgam-client.ts) either way.
 */
import type { AmalgamClient } from './amalgam-client.ts';
import { createGrpcClient, type GrpcClientOptions } from './grpc-client.ts';
import { createRestClient } from './rest-client.ts';
import type { TransportOptions } from './transport.ts';

export type {
  AmalgamClient,
  ProcessesApi,
  ProcessLog,
  ProcessLogRequest,
} from './amalgam-client.ts';

/**
 * `transport: 'rest'` (the default): `endpoints` are `https://host:port`.
 * `transport: 'grpc'`: `endpoints` are `host:port` of the replicas' gRPC
 * listeners (`grpcListen`). Same interface, types and errors either way.
 */
export type ClientOptions =
  | (TransportOptions & { transport?: 'rest' })
  | (GrpcClientOptions & { transport: 'grpc' });

export function createClient(options: ClientOptions): AmalgamClient {
  if (options.transport === 'grpc') return createGrpcClient(options);
  return createRestClient(options);
}
