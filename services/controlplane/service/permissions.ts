/**
 * Who may call what: ONE table, by operationId of openapi/amalgam.yaml (gRPC
 * methods map to the same ids in grpc/operations.ts). Every service method
 * calls `authorize(caller, '<operationId>', target?)` (service/authz.ts)
 * against it, so REST and gRPC apply the same rules, and
 * test/unit/controlplane/service/permissions.test.ts fails when an operation
 * of the contract is missing here.
 *
 * Roles: `admin` (the init credential and users with O amalgam:admins),
 * `operator` (runs the cluster's work: processes, segments, device exports,
 * drains; cannot add machines or people, remove nodes or see secrets),
 * `viewer` (every read, no write) and `node` (a machine: reads what its agent
 * needs, claims PID blocks and segments, and changes only itself).
 *
 * | operation                                 | admin | operator | viewer | node      |
 * |-------------------------------------------|-------|----------|--------|-----------|
 * | every read (get/list/watch)               |  yes  |   yes    |  yes   | yes       |
 * | listTokens, listUsers                     |  yes  |   yes    |  yes   | no        |
 * | createToken, deleteToken                  |  yes  |   no     |  no    | no        |
 * | createUser, revokeUser, removeNode        |  yes  |   no     |  no    | no        |
 * | drainNode, migrateProcess, setDeviceExport|  yes  |   yes    |  no    | no        |
 * | allocate/freeSegment, claimPidBlock,      |  yes  |   yes    |  no    | yes (*)   |
 * |   killProcess                             |       |          |        |           |
 * | createProcess                             |  yes  |   yes    |  no    | on itself |
 * | heartbeatNode, reportDevices,             |  no   |   no     |  no    | itself    |
 * |   reportProcess, reportProcessLoad        |       |          |        |           |
 * (*) a node frees and kills only what it owns (the owner rule, in the service).
 *
 * Why tokens are admin only: a join token makes a new machine a member (it
 * then runs processes as root on itself), which is adding trust, not running
 * work. Listing them shows ids and expiry, never a secret.
 */
import type { UserRole } from '../../pki/index.ts';

export type Role = UserRole | 'node';

export interface Permission {
  /** Open without a client certificate: `token` (join, a bootstrap token in the body) or `anyone`. */
  open?: 'anyone' | 'token';
  /** Roles allowed whatever the call is about. */
  roles: readonly Role[];
  /** The node role is allowed only when the call is about the calling node itself. */
  nodeSelf?: boolean;
}

const EVERYONE: readonly Role[] = ['admin', 'operator', 'viewer', 'node'];
const PEOPLE: readonly Role[] = ['admin', 'operator', 'viewer'];
const ADMIN: readonly Role[] = ['admin'];
const RUN: readonly Role[] = ['admin', 'operator'];
const RUN_AND_NODES: readonly Role[] = ['admin', 'operator', 'node'];

const read: Permission = { roles: EVERYONE };
const self: Permission = { roles: [], nodeSelf: true };
const open: Permission = { open: 'anyone', roles: EVERYONE };

export const PERMISSIONS = {
  getCluster: read,
  createToken: { roles: ADMIN },
  listTokens: { roles: PEOPLE },
  deleteToken: { roles: ADMIN },
  joinCluster: { open: 'token', roles: [] },
  listNodes: read,
  getNode: read,
  removeNode: { roles: ADMIN },
  heartbeatNode: self,
  drainNode: { roles: RUN },
  getMemoryLayout: read,
  allocateSegment: { roles: RUN_AND_NODES },
  listSegments: read,
  getSegment: read,
  freeSegment: { roles: RUN_AND_NODES },
  reportDevices: self,
  listDevices: read,
  getDevice: read,
  setDeviceExport: { roles: RUN },
  watchResources: read,
  listPidBlocks: read,
  claimPidBlock: { roles: RUN_AND_NODES },
  // A node may start work only on itself: its certificate is on that machine
  // already, so this gives it nothing it did not have. Placing work on other
  // machines (where the agent runs it as root) is an operator's decision, or
  // one compromised machine runs anything everywhere.
  createProcess: { roles: RUN, nodeSelf: true },
  listProcesses: read,
  getProcess: read,
  killProcess: { roles: RUN_AND_NODES },
  migrateProcess: { roles: RUN },
  reportProcess: self,
  reportProcessLoad: self,
  listProcessLoads: read,
  createUser: { roles: ADMIN },
  listUsers: { roles: PEOPLE },
  revokeUser: { roles: ADMIN },
  getHealth: open,
  getReadiness: open,
  getMetrics: open,
  getOpenApi: open,
  getDocs: open,
} as const satisfies Record<string, Permission>;

export type OperationId = keyof typeof PERMISSIONS;

/** Roles that act on anything of their kind, not only what they own (kill, free). */
export const ACT_ON_ANY: readonly Role[] = RUN;
