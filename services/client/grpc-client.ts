/**
 * `AmalgamClient` over gRPC: the same methods, types in and out, and errors
 * as over REST (rest-client.ts), so a caller does not care which door it
 * uses. Messages are mapped back to the contracts in grpc-messages.ts.
 *
 * Which calls may fail over (grpc-transport.ts): reads (GetInfo, List*,
 * Get*, GetLayout, the health check) after any failure without an answer;
 * writes (Create, Delete, Join, Heartbeat, Drain, Remove, AllocateSegment,
 * FreeSegment, Devices Report and SetExport, and every write of Processes)
 * only when they were never sent.
 */
import type {
  ClusterInfo,
  CreatedToken,
  CreatedUser,
  JoinResult,
  MemoryLayoutView,
  TokenView,
  UserView,
} from '../api/contracts.ts';
import type { PidBlock } from '../core/pid-blocks.ts';
import type { AmalgamClient, ProcessesApi } from './amalgam-client.ts';
import {
  defined,
  deviceFromProto,
  eventFromProto,
  items,
  type Message,
  nodeFromProto,
  processFromProto,
  processLoadFromProto,
  segmentFromProto,
  tokenFromProto,
  withoutNulls,
} from './grpc-messages.ts';
import {
  type CallKind,
  createGrpcTransport,
  type GrpcTransport,
  type GrpcTransportOptions,
} from './grpc-transport.ts';
import { readProcessLog } from './process-logs.ts';
import {
  type ClientWatch,
  type ClientWatchOptions,
  type OpenEvents,
  resumableWatch,
} from './watch.ts';

export type GrpcClientOptions = GrpcTransportOptions;

/** Unary calls of the `amalgam.v1` services, the request without its undefined members. */
class Rpc {
  constructor(readonly transport: GrpcTransport) {}

  call<T>(service: string, method: string, request: object, kind: CallKind): Promise<T> {
    return this.transport.unary<T>(`amalgam.v1.${service}`, method, defined(request), kind);
  }

  read<T = Message>(service: string, method: string, request: object = {}): Promise<T> {
    return this.call<T>(service, method, request, 'read');
  }

  write<T = Message>(service: string, method: string, request: object = {}): Promise<T> {
    return this.call<T>(service, method, request, 'write');
  }

  /** grpc.health.v1: the serving status of the whole server. */
  async health(): Promise<string> {
    const answer = await this.transport.unary<{ status?: unknown }>(
      'grpc.health.v1.Health',
      'Check',
      { service: '' },
      'read',
    );
    return String(answer.status);
  }

  /** Watch/Watch, resumed by `resumableWatch` like the REST watch. */
  watch(request: ClientWatchOptions): ClientWatch {
    const { transport } = this;
    const open: OpenEvents = async function* (from, signal, connected) {
      const stream = transport.serverStream<Message>(
        'amalgam.v1.Watch',
        'Watch',
        defined({ prefix: request.prefix, fromRevision: from }),
        signal,
        connected,
      );
      for await (const message of stream) yield eventFromProto(message);
    };
    return resumableWatch(request, open);
  }
}

/** proto3 leaves an unset `revoked_at` out; the API says null. */
function userView(message: unknown): UserView {
  const user = message as UserView;
  return { ...user, revokedAt: user.revokedAt ?? null };
}

function users(rpc: Rpc): AmalgamClient['users'] {
  return {
    create: async (request) => {
      const created = await rpc.write<CreatedUser>('Users', 'Create', request);
      return { ...created, user: userView(created.user) };
    },
    list: async () => items(await rpc.read('Users', 'List')).map(userView),
    revoke: async (name) => userView(await rpc.write('Users', 'Revoke', { name })),
  };
}

function tokens(rpc: Rpc): AmalgamClient['tokens'] {
  return {
    create: async (request = {}) =>
      tokenFromProto<CreatedToken>(await rpc.write<Message>('Tokens', 'Create', request)),
    list: async () => items(await rpc.read('Tokens', 'List')).map(tokenFromProto<TokenView>),
    delete: async (id) => {
      await rpc.write('Tokens', 'Delete', { id });
    },
  };
}

function nodes(rpc: Rpc): AmalgamClient['nodes'] {
  return {
    join: async (request) => {
      const result = await rpc.write('Nodes', 'Join', request);
      return {
        node: nodeFromProto(result.node as Message),
        certificate: result.certificate,
        caCertificate: result.caCertificate,
        rejoined: result.rejoined,
      } as JoinResult;
    },
    list: async () => items(await rpc.read('Nodes', 'List')).map(nodeFromProto),
    get: async (name) => nodeFromProto(await rpc.read('Nodes', 'Get', { name })),
    heartbeat: async (name, load, pageserver) =>
      nodeFromProto(
        await rpc.write('Nodes', 'Heartbeat', {
          name,
          load,
          ...(pageserver === undefined ? {} : { pageserver }),
        }),
      ),
    drain: async (name) => nodeFromProto(await rpc.write('Nodes', 'Drain', { name })),
    remove: async (name) => {
      await rpc.write('Nodes', 'Remove', { name });
    },
  };
}

function memory(rpc: Rpc): AmalgamClient['memory'] {
  return {
    layout: () => rpc.read<MemoryLayoutView>('Memory', 'GetLayout'),
    allocateSegment: async (request) =>
      segmentFromProto(await rpc.write('Memory', 'AllocateSegment', request)),
    listSegments: async () => items(await rpc.read('Memory', 'ListSegments')).map(segmentFromProto),
    getSegment: async (id) => segmentFromProto(await rpc.read('Memory', 'GetSegment', { id })),
    freeSegment: async (id) => {
      await rpc.write('Memory', 'FreeSegment', { id });
    },
  };
}

function devices(rpc: Rpc): AmalgamClient['devices'] {
  return {
    list: async (node) => items(await rpc.read('Devices', 'List', { node })).map(deviceFromProto),
    get: async (node, device) =>
      deviceFromProto(await rpc.read('Devices', 'Get', { node, device })),
    report: async (name, devices) =>
      items(await rpc.write('Devices', 'Report', { name, devices: devices.map(withoutNulls) })).map(
        deviceFromProto,
      ),
    setExport: async (node, device, policy) =>
      deviceFromProto(await rpc.write('Devices', 'SetExport', { node, device, policy })),
  };
}

function processes(rpc: Rpc, options: GrpcClientOptions): ProcessesApi {
  const one = async (method: string, request: object, kind: CallKind) =>
    processFromProto(await rpc.call<Message>('Processes', method, request, kind));
  const api: ProcessesApi = {
    claimPidBlock: (size) => rpc.write<PidBlock>('Processes', 'ClaimPidBlock', { size }),
    listPidBlocks: async () =>
      items(await rpc.read('Processes', 'ListPidBlocks')) as unknown as PidBlock[],
    create: (request) => one('Create', request, 'write'),
    list: async () => items(await rpc.read('Processes', 'List')).map(processFromProto),
    get: (cpid) => one('Get', { cpid }, 'read'),
    kill: (cpid) => one('Kill', { cpid }, 'write'),
    migrate: (cpid, to) => one('Migrate', { cpid, to }, 'write'),
    report: (name, cpid, report) => one('Report', { ...report, name, cpid }, 'write'),
    reportLoad: async (name, report) =>
      processLoadFromProto(await rpc.write('Processes', 'ReportLoad', { ...report, name })),
    listLoads: async () =>
      items(await rpc.read('Processes', 'ListLoads')).map(processLoadFromProto),
    watch: (request = {}) => rpc.watch({ prefix: 'processes/', ...request }),
    logs: (cpid, request) => readProcessLog(api, options, cpid, request),
  };
  return api;
}

export function createGrpcClient(options: GrpcClientOptions): AmalgamClient {
  const rpc = new Rpc(createGrpcTransport(options));
  return {
    cluster: { info: () => rpc.read<ClusterInfo>('Cluster', 'GetInfo') },
    tokens: tokens(rpc),
    users: users(rpc),
    nodes: nodes(rpc),
    memory: memory(rpc),
    devices: devices(rpc),
    processes: processes(rpc, options),
    watch: (request) => rpc.watch(request),
    // grpc.health.v1 answered at all: the process is alive (REST /healthz).
    healthy: async () => {
      await rpc.health();
      return true;
    },
    ready: async () => (await rpc.health()) === 'SERVING',
    close: () => rpc.transport.close(),
  };
}
