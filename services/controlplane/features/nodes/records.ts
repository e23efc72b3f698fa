/**
 * The nodes feature in the store: its keys, its records and their codec (the
 * only place a node or heartbeat record is parsed), the functions that turn
 * them into API views (GET and watch alike), and its watch views.
 */
import type {
  LoadReport,
  NodeLiveness,
  NodeView,
  PageServerEndpoint,
} from '../../../api/contracts.ts';
import { type MemoryLayout, rangeOf } from '../../../core/memory-layout.ts';
import type { ClusterNode } from '../../../core/nodes.ts';
import { STORE_ROOT } from '../../service/keys.ts';
import type { WatchView } from '../../service/watch-view.ts';
import { memoryKeys, parseLayout } from '../memory/records.ts';

export const nodeKeys = {
  nodes: `${STORE_ROOT}/nodes/`,
  node: (name: string) => `${STORE_ROOT}/nodes/${name}`,
  /** Liveness: one key per node, on a lease that each heartbeat replaces. */
  heartbeats: `${STORE_ROOT}/heartbeats/`,
  heartbeat: (name: string) => `${STORE_ROOT}/heartbeats/${name}`,
  /** Tombstones of removed nodes' keys, by key hash (never watchable). */
  revoked: `${STORE_ROOT}/revoked/`,
  revokedKey: (keyHash: string) => `${STORE_ROOT}/revoked/${keyHash}`,
} as const;

/**
 * What `node remove` leaves of a node's key: a certificate of that key is
 * refused, and a join with that key too, until `expiresAt` (the removal plus
 * the longest validity of a node certificate: no certificate of the key can
 * outlive it). Removals prune expired tombstones, so there are at most as
 * many as removals within one certificate lifetime.
 */
export interface RevokedRecord {
  name: string;
  removedAt: number;
  expiresAt: number;
}

/** A node as stored: core's ClusterNode. */
export type NodeRecord = ClusterNode;

export interface HeartbeatRecord {
  at: number;
  load: LoadReport;
  pageserver?: PageServerEndpoint;
}

export function parseNode(raw: string): NodeRecord {
  return JSON.parse(raw) as NodeRecord;
}

export function parseRevoked(raw: string): RevokedRecord {
  return JSON.parse(raw) as RevokedRecord;
}

export function parseHeartbeat(raw: string): HeartbeatRecord {
  return JSON.parse(raw) as HeartbeatRecord;
}

/** The node's name from a key under `nodes/` or `heartbeats/`. */
export function nodeNameOf(key: string, prefix: string): string {
  return key.slice(key.indexOf(prefix) + prefix.length);
}

/** The liveness part of a NodeView (also the value of a `heartbeats/<name>` watch event). */
export function toNodeLiveness(name: string, heartbeat: HeartbeatRecord | undefined): NodeLiveness {
  return {
    name,
    lastHeartbeatAt: heartbeat ? new Date(heartbeat.at).toISOString() : null,
    load: heartbeat?.load ?? null,
    pageserver: heartbeat?.pageserver ?? null,
  };
}

export function toNodeView(
  node: NodeRecord,
  layout: MemoryLayout | undefined,
  heartbeat: HeartbeatRecord | undefined,
): NodeView {
  const range = layout ? rangeOf(layout, node.name) : undefined;
  const { lastHeartbeatAt, load, pageserver } = toNodeLiveness(node.name, heartbeat);
  return {
    name: node.name,
    roles: node.roles,
    labels: node.labels,
    capacity: node.capacity,
    state: node.state,
    range: range ? { start: range.start, size: range.size } : { start: 0, size: 0 },
    identity: node.identity,
    joinedAt: new Date(node.joinedAt).toISOString(),
    lastHeartbeatAt,
    load,
    pageserver,
  };
}

const NODES_ROOT = 'nodes/';
const HEARTBEATS_ROOT = 'heartbeats/';

export const nodeWatchViews: WatchView[] = [
  {
    root: NODES_ROOT,
    async view(_key, raw, read) {
      const node = parseNode(raw);
      const [layout, beat] = await Promise.all([
        read(memoryKeys.layout),
        read(nodeKeys.heartbeat(node.name)),
      ]);
      return toNodeView(
        node,
        layout === undefined ? undefined : parseLayout(layout),
        beat === undefined ? undefined : parseHeartbeat(beat),
      );
    },
  },
  {
    root: HEARTBEATS_ROOT,
    view: (key, raw) => toNodeLiveness(nodeNameOf(key, HEARTBEATS_ROOT), parseHeartbeat(raw)),
  },
];
