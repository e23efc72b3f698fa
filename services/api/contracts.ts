/**
 * The public API's requests, responses and views: what clients, agents and
 * the CLI exchange with the control plane (REST and gRPC alike). The server's
 * own interfaces (Caller, ControlPlane, WatchService) live in
 * services/controlplane/service/contracts.ts.
 */
import type {
  DeviceFacts,
  DeviceInventoryItem,
  DeviceKind,
  ExportPolicy,
} from '../core/devices.ts';
import type { MemoryLayout, NodeRange } from '../core/memory-layout.ts';
import type { Extent, Placement } from '../core/segments.ts';

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

/**
 * The liveness part of a NodeView: the value of a `heartbeats/<name>` watch
 * event (built by the same function that fills those NodeView fields).
 */
export interface NodeLiveness {
  name: string;
  lastHeartbeatAt: string | null;
  load: LoadReport | null;
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

export type { DeviceInventoryItem, DeviceKind, ExportPolicy, NodeRange };

/**
 * A change to a watchable resource. `key` is relative to the control plane's
 * root (e.g. `nodes/node-a`, `heartbeats/node-a`, `memory/layout`); `value`
 * is the resource's API view, built by the same function as its GET (null
 * for a delete): `nodes/<name>` a NodeView, `heartbeats/<name>` a
 * NodeLiveness, `devices/<node>` DeviceView[], `memory/layout` a
 * MemoryLayoutView, `memory/segments` SegmentView[], `processes/<cpid>` a
 * ProcessView. Events come in revision order; to resume after a
 * disconnect, watch again from `revision + 1` of the last event seen: no
 * gap, no duplicate.
 */
export interface ResourceEvent {
  type: 'put' | 'delete';
  key: string;
  value: unknown;
  revision: number;
}

export interface WatchRequest {
  /** One of the watchable roots (`nodes/`, `heartbeats/`, `memory/`, `devices/`, `processes/`) or a prefix inside one. */
  prefix: string;
  /** Deliver every change with revision >= this; default: changes from now on. */
  fromRevision?: number;
}
