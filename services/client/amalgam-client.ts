/**
 * What the typed client offers, over either door (REST: rest-client.ts,
 * gRPC: grpc-client.ts): one method per operation, grouped as the service
 * layer is, returning the contracts' types; errors are the server's
 * `AmalgamError`s rebuilt (`ApiError`) or the client's own (`ClientError`).
 * Only types live here, so both doors depend on it and not on each other.
 */
import type { Readable } from 'node:stream';
import type {
  AllocateSegmentRequest,
  ClusterInfo,
  CreatedToken,
  CreatedUser,
  CreateProcessRequest,
  CreateTokenRequest,
  CreateUserRequest,
  DeviceInventoryItem,
  DeviceView,
  ExportPolicy,
  JoinRequest,
  JoinResult,
  LoadReport,
  MemoryLayoutView,
  NodeView,
  PageServerEndpoint,
  ProcessLoadReport,
  ProcessLoadView,
  ProcessReport,
  ProcessView,
  SegmentView,
  TokenView,
  UserView,
} from '../api/contracts.ts';
import type { PidBlock } from '../core/pid-blocks.ts';
import type { ClientWatch, ClientWatchOptions } from './watch.ts';

/** What `processes.logs` asks for. */
export interface ProcessLogRequest {
  /** The node whose part to read (each node keeps the output of the copies it ran); default the current home. */
  node?: string;
  /** Keep the stream open while the process runs there. */
  follow?: boolean;
}

export interface ProcessLog {
  /** The node whose agent answered. */
  node: string;
  /** The output bytes, unread. */
  stream: Readable;
}

/** The network process space (the `processes` tag of the API, gRPC service Processes). */
export interface ProcessesApi {
  claimPidBlock(size?: number): Promise<PidBlock>;
  listPidBlocks(): Promise<PidBlock[]>;
  create(request: CreateProcessRequest): Promise<ProcessView>;
  list(): Promise<ProcessView[]>;
  get(cpid: number): Promise<ProcessView>;
  kill(cpid: number): Promise<ProcessView>;
  migrate(cpid: number, to: string): Promise<ProcessView>;
  /** As node `node` (the caller), about its copy of `cpid`. */
  report(node: string, cpid: number, report: ProcessReport): Promise<ProcessView>;
  reportLoad(node: string, report: ProcessLoadReport): Promise<ProcessLoadView>;
  listLoads(): Promise<ProcessLoadView[]>;
  /** Changes of process records (`processes/`), resumed by itself. */
  watch(request?: Partial<ClientWatchOptions>): ClientWatch;
  /**
   * The process's output, from the agent of the node that ran it (its
   * endpoint as published in its load report; mutual TLS with this client's
   * certificate, the agent's must name the node).
   */
  logs(cpid: number, request?: ProcessLogRequest): Promise<ProcessLog>;
}

export interface AmalgamClient {
  cluster: {
    info(): Promise<ClusterInfo>;
  };
  tokens: {
    create(request?: CreateTokenRequest): Promise<CreatedToken>;
    list(): Promise<TokenView[]>;
    delete(id: string): Promise<void>;
  };
  /** People and their roles: create and revoke need an admin; list, any person. */
  users: {
    create(request: CreateUserRequest): Promise<CreatedUser>;
    list(): Promise<UserView[]>;
    revoke(name: string): Promise<UserView>;
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
  processes: ProcessesApi;
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
