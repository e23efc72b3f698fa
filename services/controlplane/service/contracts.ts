/**
 * The control plane's service layer as its transports see it (server only:
 * clients speak the API of services/api, never these interfaces).
 *
 * REST (fastify) and gRPC handlers validate by schema, work out the Caller
 * from the TLS peer certificate (or a bootstrap token for join), call ONE of
 * these functions and map the result. Authorization lives in the services, so
 * both doors apply the same rules. Every failure is an AmalgamError with a
 * stable code.
 */
import type {
  AllocateSegmentRequest,
  ClaimPidBlockRequest,
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
  MigrateProcessRequest,
  NodeState,
  NodeView,
  PageServerEndpoint,
  ProcessLoadReport,
  ProcessLoadView,
  ProcessReport,
  ProcessView,
  ResourceEvent,
  SegmentView,
  TokenView,
  UserView,
  WatchRequest,
} from '../../api/contracts.ts';
import type { PidBlock } from '../../core/pid-blocks.ts';
import type { PeerIdentity } from '../../pki/index.ts';

/**
 * Who is calling, as proven by mutual TLS (pki/identity.ts): the admin
 * credential, a node, or a user with a role; `keyHash` names the key the
 * certificate carried (absent only for in-process callers). Join is the only
 * call open to anonymous callers. What each may do: service/permissions.ts.
 */
export type Caller = PeerIdentity | { kind: 'anonymous' };

/**
 * Whether a certificate's Caller still holds (service/credentials.ts): the
 * doors call it right after working out the Caller; CREDENTIAL_REVOKED when
 * the key is no longer the one recorded for its subject.
 */
export interface CredentialVerifier {
  verify(caller: Caller, keyHash: string | undefined): Promise<Caller>;
}

export interface ClusterApi {
  info(caller: Caller): Promise<ClusterInfo>;
}

export interface TokenApi {
  create(caller: Caller, request: CreateTokenRequest): Promise<CreatedToken>;
  list(caller: Caller): Promise<TokenView[]>;
  delete(caller: Caller, id: string): Promise<void>;
}

/** What a presented user certificate is worth: `ok` only for the live record's own key. */
export type CredentialState = 'ok' | 'revoked' | 'unknown';

/** People and their roles (features/users/user-service.ts). */
export interface UserApi {
  /** Admin only. Claims the name for the CSR's key, then signs CN user:<name>, O the role's group. */
  create(caller: Caller, request: CreateUserRequest): Promise<CreatedUser>;
  list(caller: Caller): Promise<UserView[]>;
  /** Admin only. Marks the record revoked (kept: the name is never issued again). */
  revoke(caller: Caller, name: string): Promise<UserView>;
  /** From the mirror: a revoke is seen within the watch's lag. The doors refuse all but `ok`. */
  userCredentialState(name: string, keyHash: string | undefined): CredentialState;
}

export interface NodeApi {
  /**
   * Token-authenticated. Atomically: claim the name, take a range, record the
   * node, spend a use of the token; then sign its CSR. `source` (the client's
   * address, from the door) is rate-limited.
   */
  join(request: JoinRequest, source?: string): Promise<JoinResult>;
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
  /** Admin only. Deletes the node and frees its range (the only way a range is freed). */
  remove(caller: Caller, name: string): Promise<void>;
}

export interface MemoryApi {
  layout(caller: Caller): Promise<MemoryLayoutView>;
  allocateSegment(caller: Caller, request: AllocateSegmentRequest): Promise<SegmentView>;
  listSegments(caller: Caller): Promise<SegmentView[]>;
  getSegment(caller: Caller, id: string): Promise<SegmentView>;
  freeSegment(caller: Caller, id: string): Promise<void>;
}

export interface DeviceApi {
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
}

/** The network process space (features/processes/process-service.ts implements it). */
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

/** An open watch: iterate it; WATCH_COMPACTED when fromRevision is gone (re-list, then watch). */
export interface ResourceWatch extends AsyncIterable<ResourceEvent> {
  close(): Promise<void>;
}

export interface WatchService {
  open(caller: Caller, request: WatchRequest): ResourceWatch;
}

export interface ControlPlane {
  /** Checks that a certificate's Caller is still bound to its record (both doors). */
  credentials: CredentialVerifier;
  watch: WatchService;
  processes: ProcessService;
  cluster: ClusterApi;
  tokens: TokenApi;
  users: UserApi;
  nodes: NodeApi;
  memory: MemoryApi;
  devices: DeviceApi;
}

/** Counts for /metrics and `clusteradm`; cheap enough to call on every scrape. */
export interface ControlPlaneStats {
  nodesByState: Record<NodeState, number>;
  addressSpaceAllocatedBytes: number;
  addressSpaceFreeBytes: number;
  leader: boolean;
  /** The join rate limiter of this replica (features/nodes/join-limits.ts). */
  joinRate?: { sources: number; refusedTotal: number; evictedTotal: number };
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
