/**
 * Every unary gRPC method, by service and RPC of openapi/amalgam.proto: each
 * feature's methods (features/<feature>/*-grpc.ts) plus the cluster's. The
 * streaming Watch is grpc/server.ts's. What a method is: method.ts.
 */
import { deviceMethods } from '../features/devices/device-grpc.ts';
import { memoryMethods } from '../features/memory/memory-grpc.ts';
import { nodeMethods } from '../features/nodes/node-grpc.ts';
import { processMethods } from '../features/processes/process-grpc.ts';
import { tokenMethods } from '../features/tokens/token-grpc.ts';
import { userMethods } from '../features/users/user-grpc.ts';
import type { ServiceMethods } from './method.ts';

export type { UnaryHandler, UnaryMethod } from './method.ts';

const clusterMethods: ServiceMethods = {
  GetInfo: { handle: (runtime, caller) => runtime.cluster.info(caller) },
};

/** By proto service name; a new feature adds its service here. */
export const unaryMethods: Record<string, ServiceMethods> = {
  Cluster: clusterMethods,
  Tokens: tokenMethods,
  Users: userMethods,
  Nodes: nodeMethods,
  Devices: deviceMethods,
  Memory: memoryMethods,
  Processes: processMethods,
};
