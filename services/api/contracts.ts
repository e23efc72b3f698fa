/**
 * The control plane's service layer, as the transports see it.
 *
 * REST (fastify) and gRPC handlers validate by schema, work out the Caller
 * from the TLS peer certificate (or a bootstrap token for join), call ONE of
 * these functions and map the result. Authorization lives here, so both doors
 * apply the same rules. Every failure is an AmalgamError with a stable code.
 */
import type {
  DeviceFacts,
  DeviceInventoryItem,
  DeviceKind,
  ExportPolicy,
} from '../core/devices.ts';
import type { MemoryLayout, NodeRange } from '../core/memory-layout.ts';
import type { PidBlock } from '../core/pid-blocks.ts';
import type { Migratable, ProcessRecord } from '../core/processes.ts';
import type { Extent, Placement } from '../core/segments.ts';

/** Who is calling, as proven by mutual TLS. Join is the only call open to anonymous callers. */
export type Caller = { kind: 'admin' } | { kind: 'node'; name: string } | { kind: 'anonymous' };

export type NodeState = 'Joining' | 'Ready' | 'NotReady' | 'Draining' | 'Removed';

export interface NodeCapacity {
  memoryBytes: number;
  swapBytes: number;
  /** Bytes this node serves to the network memory space; its range is this, rounded up to 2 MiB. */
  contributedBytes: number;
  cpus: number;
  /** Relative CPU speed score (bogomips-like, higher is faster). */
  cpuSpeed: number;
}

export interface LoadReport {
  load1: number;
  load5: number;
  load15: number;
  memoryUsedBytes: number;
  processes: number;
}

/** Where a node's page server listens, as the node itself reports it on its heartbeats. */
export interface PageServerEndpoint {
  /** `host:port` (an IPv6 host in brackets). */
  address: string;
  /** Mutual TLS with the cluster certificates; false: plaintext, loopback only. */
  tls: boolean;
}

/**
 * The REST heartbeat body: the load report's fields, plus where the page server
 * listens once it is up (flat, so a body that is only a LoadReport stays valid).
 */
export interface HeartbeatRequest extends LoadReport {
  pageserver?: PageServerEndpoint;
}

export interface NodeView {
  name: string;
  roles: string[];
  labels: Record<string, string>;
  capacity: NodeCapacity;
  state: NodeState;
  /** The node's range of the network memory space, 2 MiB aligned. */
  range: { start: number; size: number };
  /** sha256:<hex> of the node key's SubjectPublicKeyInfo: re-joining with the same key is the same node. */
  identity: string;
  joinedAt: string;
  lastHeartbeatAt: string | null;
  load: LoadReport | null;
  /** The node's page server as its last live heartbeat reported it; null when unknown. */
  pageserver: PageServerEndpoint | null;
}

export interface ClusterInfo {
  name: string;
  /** sha256:<hex> of the CA's SubjectPublicKeyInfo: what `clusteradm join --ca-cert-hash` pins. */
  caCertHash: string;
  store: 'embedded' | 'etcd';
  nodes: number;
  /** Whether the replica that answered holds the controller leadership. */
  leader: boolean;
}

export type TokenUsage = 'join';

export interface TokenView {
  id: string;
  description: string;
  usages: TokenUsage[];
  createdAt: string;
  expiresAt: string;
}

export interface CreateTokenRequest {
  /** Default 86400 (24 h); at most 30 days. */
  ttlSeconds?: number;
  description?: string;
  usages?: TokenUsage[];
}

export interface CreatedToken extends TokenView {
  /** The whole token `<id>.<secret>`. Shown once; only a hash of the secret is stored. */
  token: string;
}

export interface JoinRequest {
  /** Bootstrap token `[a-z0-9]{6}.[a-z0-9]{16}`. */
  token: string;
  /** DNS label, unique in the cluster. */
  name: string;
  /** PEM PKCS#10 CSR made on the joining machine; its key never leaves it. */
  csr: string;
  capacity: NodeCapacity;
  roles?: string[];
  labels?: Record<string, string>;
}

export interface JoinResult {
  node: NodeView;
  /** PEM node certificate: CN node:<name>, O amalgam:nodes, client+server usage. */
  certificate: string;
  caCertificate: string;
  /** True when this identity had joined before and got its same range back. */
  rejoined: boolean;
}

export interface SegmentView {
  id: string;
  size: number;
  placement: Placement;
  extents: Extent[];
  owner: string;
  createdAt: string;
}

export interface AllocateSegmentRequest {
  /** Bytes; rounded up to 4 KiB pages. */
  size: number;
  placement?: Placement;
  /** Client-chosen id makes the allocation idempotent; default: generated. */
  id?: string;
}

export interface MemoryLayoutView {
  layout: MemoryLayout;
  allocatedBytes: number;
  freeBytes: number;
  segments: number;
}

/** One device of `/remotedev/<node>/<name>`, as every member sees it. */
export interface DeviceView extends DeviceFacts {
  node: string;
  /** What the admin shares: none (the default), ro or rw. */
  exportPolicy: ExportPolicy;
  /** False while the node's inventory does not list it (the policy is kept). */
  present: boolean;
  updatedAt: string;
}

/** The body of a node's inventory report: every device it has now. */
export interface DeviceInventory {
  devices: DeviceInventoryItem[];
}

export interface SetExportRequest {
  policy: ExportPolicy;
}

export type { DeviceInventoryItem, DeviceKind, ExportPolicy };

// ---- the network process space ----

export type ProcessView = ProcessRecord;

export interface ClaimPidBlockRequest {
  size?: number;
}

export interface CreateProcessRequest {
  command: string;
  args?: string[];
  migratable?: Migratable;
  cpus?: number;
  labels?: Record<string, string>;
  node?: string;
  cpid?: number;
}

export interface MigrateProcessRequest {
  to: string;
}

export type ProcessReportEvent =
  | 'running'
  | 'exited'
  | 'failed'
  | 'source-stopped'
  | 'fence-source';

export interface ProcessReport {
  epoch: number;
  event: ProcessReportEvent;
  how?: 'checkpointed' | 'stopped';
  exitCode?: number;
  failure?: string;
}

export interface ProcessLoadReport {
  cpus: number;
  cpuSpeed: number;
  load1: number;
  runnable: number;
  agentAddress?: string;
  processes: { cpid: number; epoch: number; cpu: number }[];
}

export interface ProcessLoadView extends Omit<ProcessLoadReport, 'agentAddress'> {
  node: string;
  reportedAt: number;
  agentAddress: string | null;
}

/** The process service as the transports see it (features/processes/process-service.ts). */
export interface ProcessService {
  claimPidBlock(caller: Caller, request: ClaimPidBlockRequest): Promise<PidBlock>;
  /** Every claimed block, in claim order, read from the store (not a cache). */
  listPidBlocks(caller: Caller): Promise<PidBlock[]>;
  create(caller: Caller, request: CreateProcessRequest): Promise<ProcessView>;
  list(caller: Caller): Promise<ProcessView[]>;
  get(caller: Caller, cpid: number): Promise<ProcessView>;
  kill(caller: Caller, cpid: number): Promise<ProcessView>;
  migrate(caller: Caller, cpid: number, request: MigrateProcessRequest): Promise<ProcessView>;
  /** Only the node itself, about its own copy. */
  report(caller: Caller, node: string, cpid: number, report: ProcessReport): Promise<ProcessView>;
  reportLoad(caller: Caller, name: string, report: ProcessLoadReport): Promise<ProcessLoadView>;
  listLoads(caller: Caller): Promise<ProcessLoadView[]>;
}

export interface ControlPlane {
  watch: WatchService;
  /** The network process space (features/processes/). */
  processes: ProcessService;
  cluster: {
    info(caller: Caller): Promise<ClusterInfo>;
  };
  tokens: {
    create(caller: Caller, request: CreateTokenRequest): Promise<CreatedToken>;
    list(caller: Caller): Promise<TokenView[]>;
    delete(caller: Caller, id: string): Promise<void>;
  };
  nodes: {
    /** Token-authenticated. Atomically: claim the name, take a range, record the node; then sign its CSR. */
    join(request: JoinRequest): Promise<JoinResult>;
    list(caller: Caller): Promise<NodeView[]>;
    get(caller: Caller, name: string): Promise<NodeView>;
    /** Only the node itself. Renews its liveness lease; a NotReady node becomes Ready. */
    heartbeat(
      caller: Caller,
      name: string,
      load: LoadReport,
      pageserver?: PageServerEndpoint,
    ): Promise<NodeView>;
    drain(caller: Caller, name: string): Promise<NodeView>;
    /** Admin only. Marks the node Removed and frees its range (the only way a range is freed). */
    remove(caller: Caller, name: string): Promise<void>;
  };
  memory: {
    layout(caller: Caller): Promise<MemoryLayoutView>;
    allocateSegment(caller: Caller, request: AllocateSegmentRequest): Promise<SegmentView>;
    listSegments(caller: Caller): Promise<SegmentView[]>;
    getSegment(caller: Caller, id: string): Promise<SegmentView>;
    freeSegment(caller: Caller, id: string): Promise<void>;
  };
  devices: {
    /** Every device of every node, or of `node` only; sorted by node, then name. */
    list(caller: Caller, node?: string): Promise<DeviceView[]>;
    get(caller: Caller, node: string, device: string): Promise<DeviceView>;
    /** Only the node itself: its whole inventory (new devices start unexported). */
    report(caller: Caller, node: string, devices: DeviceInventoryItem[]): Promise<DeviceView[]>;
    /** Admin only: none, ro or rw. */
    setExport(
      caller: Caller,
      node: string,
      device: string,
      policy: ExportPolicy,
    ): Promise<DeviceView>;
  };
}

export type { NodeRange };

/** Counts for /metrics and `clusteradm`; cheap enough to call on every scrape. */
export interface ControlPlaneStats {
  nodesByState: Record<NodeState, number>;
  addressSpaceAllocatedBytes: number;
  addressSpaceFreeBytes: number;
  leader: boolean;
}

/** The composition root's product (services/controlplane/control-plane.ts). */
export interface ControlPlaneRuntime extends ControlPlane {
  stats(): Promise<ControlPlaneStats>;
  /** True when the store answers (a linearizable read within the timeout). */
  ready(): Promise<boolean>;
  isLeader(): boolean;
  /** Stops controllers and leadership; does not close the store it was given. */
  close(): Promise<void>;
}

/**
 * A change to a watchable resource. `key` is relative to the control plane's
 * root (e.g. `nodes/node-a`, `heartbeats/node-a`, `memory/layout`); `value`
 * is the resource as stored (null for a delete). Events come in revision
 * order; to resume after a disconnect, watch again from `revision + 1` of the
 * last event seen: no gap, no duplicate.
 */
export interface ResourceEvent {
  type: 'put' | 'delete';
  key: string;
  value: unknown;
  revision: number;
}

export interface WatchRequest {
  /** One of the watchable roots (`nodes/`, `heartbeats/`, `memory/`, `devices/`) or a prefix inside one. */
  prefix: string;
  /** Deliver every change with revision >= this; default: changes from now on. */
  fromRevision?: number;
}

/** An open watch: iterate it; WATCH_COMPACTED when fromRevision is gone (re-list, then watch). */
export interface ResourceWatch extends AsyncIterable<ResourceEvent> {
  close(): Promise<void>;
}

export interface WatchService {
  open(caller: Caller, request: WatchRequest): ResourceWatch;
}
