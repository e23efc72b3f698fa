/**
 * Where the control plane keeps its state in the store. One place, so the
 * key layout can be read at a glance and migrated deliberately.
 */
const ROOT = '/amalgam/v1';

export const keys = {
  /** Every key of the control plane (what its mirror watches). */
  root: `${ROOT}/`,
  cluster: `${ROOT}/cluster`,
  tokens: `${ROOT}/tokens/`,
  token: (id: string) => `${ROOT}/tokens/${id}`,
  nodes: `${ROOT}/nodes/`,
  node: (name: string) => `${ROOT}/nodes/${name}`,
  /** Liveness: one key per node, on a lease that each heartbeat replaces. */
  heartbeats: `${ROOT}/heartbeats/`,
  heartbeat: (name: string) => `${ROOT}/heartbeats/${name}`,
  /** The whole network memory layout: one value, so every range claim is one CAS. */
  layout: `${ROOT}/memory/layout`,
  /** Every segment, with its owner: one value, CAS together with the layout. */
  segments: `${ROOT}/memory/segments`,
  /** The network device space: one value per node (its DeviceTable), so an inventory is one CAS. */
  devices: `${ROOT}/devices/`,
  deviceTable: (node: string) => `${ROOT}/devices/${node}`,
  /** Controller leadership: the replica id, on the leader's lease. */
  leader: `${ROOT}/leader`,
} as const;
