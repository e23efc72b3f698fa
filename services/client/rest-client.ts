/**
 * `AmalgamClient` over REST (openapi/amalgam.yaml): one small builder per
 * group of operations, each given the transport it calls through.
 */
import type {
  ClusterInfo,
  CreatedToken,
  CreatedUser,
  DeviceView,
  JoinResult,
  MemoryLayoutView,
  NodeView,
  ProcessLoadView,
  ProcessView,
  SegmentView,
  TokenView,
  UserView,
} from '../api/contracts.ts';
import type { PidBlock } from '../core/pid-blocks.ts';
import type { AmalgamClient, ProcessesApi } from './amalgam-client.ts';
import { ClientError } from './errors.ts';
import { readProcessLog } from './process-logs.ts';
import {
  createTransport,
  type RawResponse,
  type Transport,
  type TransportOptions,
} from './transport.ts';
import { openWatch } from './watch.ts';

interface Items<T> {
  items: T[];
}

function itemsOf<T>(body: Items<T>, path: string): T[] {
  if (typeof body !== 'object' || body === null || !Array.isArray(body.items)) {
    throw new ClientError('BAD_RESPONSE', `GET ${path} did not answer { items: [...] }`);
  }
  return body.items;
}

const segment = (value: string): string => encodeURIComponent(value);

/** GET `path`, an `{ items }` answer. */
async function list<T>({ call }: Transport, path: string, name = path): Promise<T[]> {
  return itemsOf(await call<Items<T>>('GET', path), name);
}

function tokens(transport: Transport): AmalgamClient['tokens'] {
  const { call } = transport;
  return {
    create: (request = {}) => call<CreatedToken>('POST', '/v1/tokens', request),
    list: () => list<TokenView>(transport, '/v1/tokens'),
    delete: async (id) => {
      await call<void>('DELETE', `/v1/tokens/${segment(id)}`);
    },
  };
}

function users(transport: Transport): AmalgamClient['users'] {
  const { call } = transport;
  return {
    create: (request) => call<CreatedUser>('POST', '/v1/users', request),
    list: () => list<UserView>(transport, '/v1/users'),
    revoke: (name) => call<UserView>('DELETE', `/v1/users/${segment(name)}`),
  };
}

function nodes(transport: Transport): AmalgamClient['nodes'] {
  const { call } = transport;
  return {
    join: (request) => call<JoinResult>('POST', '/v1/join', request),
    list: () => list<NodeView>(transport, '/v1/nodes'),
    get: (name) => call<NodeView>('GET', `/v1/nodes/${segment(name)}`),
    heartbeat: (name, load, pageserver) =>
      call<NodeView>(
        'POST',
        `/v1/nodes/${segment(name)}/heartbeat`,
        pageserver === undefined ? load : { ...load, pageserver },
      ),
    drain: (name) => call<NodeView>('POST', `/v1/nodes/${segment(name)}/drain`, {}),
    remove: async (name) => {
      await call<void>('DELETE', `/v1/nodes/${segment(name)}`);
    },
  };
}

function memory(transport: Transport): AmalgamClient['memory'] {
  const { call } = transport;
  return {
    layout: () => call<MemoryLayoutView>('GET', '/v1/memory/layout'),
    allocateSegment: (request) => call<SegmentView>('POST', '/v1/memory/segments', request),
    listSegments: () => list<SegmentView>(transport, '/v1/memory/segments'),
    getSegment: (id) => call<SegmentView>('GET', `/v1/memory/segments/${segment(id)}`),
    freeSegment: async (id) => {
      await call<void>('DELETE', `/v1/memory/segments/${segment(id)}`);
    },
  };
}

function devices(transport: Transport): AmalgamClient['devices'] {
  const { call } = transport;
  return {
    list: (node) =>
      list<DeviceView>(
        transport,
        node === undefined ? '/v1/devices' : `/v1/devices?${new URLSearchParams({ node })}`,
        '/v1/devices',
      ),
    get: (node, device) =>
      call<DeviceView>('GET', `/v1/devices/${segment(node)}/${segment(device)}`),
    report: async (node, devices) =>
      itemsOf(
        await call<Items<DeviceView>>('POST', `/v1/nodes/${segment(node)}/devices`, { devices }),
        'reportDevices',
      ),
    setExport: (node, device, policy) =>
      call<DeviceView>('POST', `/v1/devices/${segment(node)}/${segment(device)}/export`, {
        policy,
      }),
  };
}

function processes(transport: Transport, options: TransportOptions): ProcessesApi {
  const { call } = transport;
  const api: ProcessesApi = {
    claimPidBlock: (size) =>
      call<PidBlock>('POST', '/v1/pid-blocks', size === undefined ? {} : { size }),
    listPidBlocks: () => list<PidBlock>(transport, '/v1/pid-blocks'),
    create: (request) => call<ProcessView>('POST', '/v1/processes', request),
    list: () => list<ProcessView>(transport, '/v1/processes'),
    get: (cpid) => call<ProcessView>('GET', `/v1/processes/${cpid}`),
    kill: (cpid) => call<ProcessView>('POST', `/v1/processes/${cpid}/kill`, {}),
    migrate: (cpid, to) => call<ProcessView>('POST', `/v1/processes/${cpid}/migrate`, { to }),
    report: (node, cpid, report) =>
      call<ProcessView>('POST', `/v1/nodes/${segment(node)}/processes/${cpid}/report`, report),
    reportLoad: (node, report) =>
      call<ProcessLoadView>('POST', `/v1/process-loads/${segment(node)}`, report),
    listLoads: () => list<ProcessLoadView>(transport, '/v1/process-loads'),
    watch: (request = {}) => openWatch(transport, { prefix: 'processes/', ...request }),
    logs: (cpid, request) => readProcessLog(api, options, cpid, request),
  };
  return api;
}

export function createRestClient(options: TransportOptions): AmalgamClient {
  const transport = createTransport(options);
  const ok = (response: RawResponse): boolean => response.status >= 200 && response.status < 300;
  return {
    cluster: { info: () => transport.call<ClusterInfo>('GET', '/v1/cluster') },
    tokens: tokens(transport),
    users: users(transport),
    nodes: nodes(transport),
    memory: memory(transport),
    devices: devices(transport),
    processes: processes(transport, options),
    watch: (request) => openWatch(transport, request),
    healthy: async () => ok(await transport.raw('GET', '/healthz')),
    ready: async () => ok(await transport.raw('GET', '/readyz')),
    close: () => transport.close(),
  };
}
