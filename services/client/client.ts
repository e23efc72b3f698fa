/**
 * The typed client of clusterd's REST API, used by clusteradm, the agent and
 * the tests. One method per operation, grouped as the service layer is
 * (`ControlPlane` in contracts.ts), returning the same types; errors are the
 * server's `AmalgamError`s rebuilt (`ApiError`) or the client's own
 * (`ClientError`).
 */
import type {
  AllocateSegmentRequest,
  ClusterInfo,
  CreatedToken,
  CreateTokenRequest,
  DeviceInventoryItem,
  DeviceView,
  ExportPolicy,
  JoinRequest,
  JoinResult,
  LoadReport,
  MemoryLayoutView,
  NodeView,
  PageServerEndpoint,
  SegmentView,
  TokenView,
} from '../api/contracts.ts';
import { ClientError } from './errors.ts';
import { createGrpcClient, type GrpcClientOptions } from './grpc-client.ts';
import { createTransport, type RawResponse, type TransportOptions } from './transport.ts';
import { type ClientWatch, type ClientWatchOptions, openWatch } from './watch.ts';

/**
 * `transport: 'rest'` (the default): `endpoints` are `https://host:port`.
 * `transport: 'grpc'`: `endpoints` are `host:port` of the replicas' gRPC
 * listeners (`grpcListen`). Same interface, types and errors either way.
 */
export type ClientOptions =
  | (TransportOptions & { transport?: 'rest' })
  | (GrpcClientOptions & { transport: 'grpc' });

export interface AmalgamClient {
  cluster: {
    info(): Promise<ClusterInfo>;
  };
  tokens: {
    create(request?: CreateTokenRequest): Promise<CreatedToken>;
    list(): Promise<TokenView[]>;
    delete(id: string): Promise<void>;
  };
  nodes: {
    /** Token-authenticated: works without a client certificate. */
    join(request: JoinRequest): Promise<JoinResult>;
    list(): Promise<NodeView[]>;
    get(name: string): Promise<NodeView>;
    /** `pageserver`: where this node's page server listens, once it is up. */
    heartbeat(name: string, load: LoadReport, pageserver?: PageServerEndpoint): Promise<NodeView>;
    drain(name: string): Promise<NodeView>;
    remove(name: string): Promise<void>;
  };
  memory: {
    layout(): Promise<MemoryLayoutView>;
    allocateSegment(request: AllocateSegmentRequest): Promise<SegmentView>;
    listSegments(): Promise<SegmentView[]>;
    getSegment(id: string): Promise<SegmentView>;
    freeSegment(id: string): Promise<void>;
  };
  /** The network device space, `/remotedev/<node>/<device>`. */
  devices: {
    /** Every device, or only `node`'s. */
    list(node?: string): Promise<DeviceView[]>;
    get(node: string, device: string): Promise<DeviceView>;
    /** Only the node itself (its agent): its whole inventory; answers its devices. */
    report(node: string, devices: DeviceInventoryItem[]): Promise<DeviceView[]>;
    /** Admin only: `none` unexports. */
    setExport(node: string, device: string, policy: ExportPolicy): Promise<DeviceView>;
  };
  /**
   * GET /v1/watch (gRPC Watch/Watch): the changes under `prefix` from
   * `fromRevision` on, resumed by itself after a dropped connection (see watch.ts). Ends with an ApiError
   * WATCH_COMPACTED when the history is gone: re-list, then watch again.
   */
  watch(request: ClientWatchOptions): ClientWatch;
  /** GET /healthz: true on a 2xx answer. */
  healthy(): Promise<boolean>;
  /** GET /readyz: true on a 2xx answer, false on any other HTTP answer. */
  ready(): Promise<boolean>;
  /** Closes the connections; the client cannot be used afterwards. */
  close(): Promise<void>;
}

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

export function createClient(options: ClientOptions): AmalgamClient {
  if (options.transport === 'grpc') return createGrpcClient(options);
  return createRestClient(options);
}

function createRestClient(options: TransportOptions): AmalgamClient {
  const transport = createTransport(options);
  const { call } = transport;
  const ok = (response: RawResponse): boolean => response.status >= 200 && response.status < 300;

  return {
    cluster: {
      info: () => call<ClusterInfo>('GET', '/v1/cluster'),
    },
    tokens: {
      create: (request = {}) => call<CreatedToken>('POST', '/v1/tokens', request),
      list: async () => itemsOf(await call<Items<TokenView>>('GET', '/v1/tokens'), '/v1/tokens'),
      delete: async (id) => {
        await call<void>('DELETE', `/v1/tokens/${segment(id)}`);
      },
    },
    nodes: {
      join: (request) => call<JoinResult>('POST', '/v1/join', request),
      list: async () => itemsOf(await call<Items<NodeView>>('GET', '/v1/nodes'), '/v1/nodes'),
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
    },
    memory: {
      layout: () => call<MemoryLayoutView>('GET', '/v1/memory/layout'),
      allocateSegment: (request) => call<SegmentView>('POST', '/v1/memory/segments', request),
      listSegments: async () =>
        itemsOf(
          await call<Items<SegmentView>>('GET', '/v1/memory/segments'),
          '/v1/memory/segments',
        ),
      getSegment: (id) => call<SegmentView>('GET', `/v1/memory/segments/${segment(id)}`),
      freeSegment: async (id) => {
        await call<void>('DELETE', `/v1/memory/segments/${segment(id)}`);
      },
    },
    devices: {
      list: async (node) => {
        const path =
          node === undefined ? '/v1/devices' : `/v1/devices?${new URLSearchParams({ node })}`;
        return itemsOf(await call<Items<DeviceView>>('GET', path), '/v1/devices');
      },
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
    },
    watch: (request) => openWatch(transport, request),
    healthy: async () => ok(await transport.raw('GET', '/healthz')),
    ready: async () => ok(await transport.raw('GET', '/readyz')),
    close: () => transport.close(),
  };
}
