/**
 * The control plane's service layer, as the transports see it.
 *
 * REST (fastify) and gRPC handlers validate by schema, work out the Caller
 * from the TLS peer certificate (or a bootstrap token for join), call ONE of
 * these functions and map the result. Authorization lives here, so both doors
 * apply the same rules. Every failure is an AmalgamError with a stable code.
 */
import type { DeviceInventoryItem, DeviceKind, ExportPolicy } from '../core/devices.ts';
import type { NodeRange } from '../core/memory-layout.ts';
import type { ProcessService } from './process-contracts.ts';
import type {
  AllocateSegmentRequest,
  ClusterInfo,
  CreatedToken,
  CreateTokenRequest,
  DeviceView,
  JoinRequest,
  JoinResult,
  LoadReport,
  MemoryLayoutView,
  NodeState,
  NodeView,
  PageServerEndpoint,
  ResourceEvent,
  SegmentView,
  TokenView,
} from './types.ts';

export type * from './types.ts';

/** Who is calling, as proven by mutual TLS. Join is the only call open to anonymous callers. */
export type Caller = { kind: 'admin' } | { kind: 'node'; name: string } | { kind: 'anonymous' };

export type { DeviceInventoryItem, DeviceKind, ExportPolicy };

export interface ControlPlane {
  watch: WatchService;
  /** The network process space (process-contracts.ts). */
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
 * ResourceEvent (types.ts): a change to a watchable resource. `key` is relative
 * to the control plane's root (e.g. `nodes/node-a`, `heartbeats/node-a`,
 * `memory/layout`); `value` is the resource as stored (null for a delete).
 * Events come in revision order; to resume after a disconnect, watch again from
 * `revision + 1` of the last event seen: no gap, no duplicate.
 */
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
