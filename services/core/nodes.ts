/**
 * Nodes as a pure state machine: what a join claims, how a heartbeat, a drain
 * or a silent lease moves a node's state, when a node may be removed, and the
 * rules its inputs follow. No I/O: the node service reads the records, calls
 * these with the time, and writes what they return in one compare-and-swap.
 */
import { AmalgamError } from './errors.ts';
import { allocateRange, type MemoryLayout, releaseRange } from './memory-layout.ts';
import { validateLabels, validateNodeName } from './names.ts';
import { type SegmentTable, segmentsOnNode } from './segments.ts';

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

export interface NodeLoad {
  load1: number;
  load5: number;
  load15: number;
  memoryUsedBytes: number;
  processes: number;
}

/** `host:port` of a node's page server, and whether it speaks mutual TLS. */
export interface PageServerAddress {
  address: string;
  tls: boolean;
}

/** A member of the cluster as the control plane records it. */
export interface ClusterNode {
  name: string;
  /** sha256:<hex> of the node key's SubjectPublicKeyInfo. */
  identity: string;
  roles: string[];
  labels: Record<string, string>;
  capacity: NodeCapacity;
  state: NodeState;
  joinedAt: number;
}

/** What a joining machine asks for, once its CSR proved `identity`. */
export interface NodeClaim {
  name: string;
  identity: string;
  capacity: NodeCapacity;
  roles?: string[];
  labels?: Record<string, string>;
}

export type ClaimOutcome =
  | { ok: true; node: ClusterNode; rejoined: boolean }
  | { ok: false; error: unknown };

export interface ClaimDecision {
  layout: MemoryLayout;
  layoutChanged: boolean;
  /** Nodes to record (new names only). */
  created: ClusterNode[];
  /** One per claim, in order. */
  outcomes: ClaimOutcome[];
}

export const MAX_ROLES = 16;
const MAX_HOST_LENGTH = 253;

/**
 * Decides a batch of joins together: each claim takes its name (unless
 * another identity holds it) and a range of the layout. The same identity
 * again gets its same record and range back, whatever it asks for now. One
 * refused claim does not fail its neighbours.
 */
export function decideClaims(
  layout: MemoryLayout,
  stored: (name: string) => ClusterNode | undefined,
  claims: readonly NodeClaim[],
  now: number,
): ClaimDecision {
  let next = layout;
  let layoutChanged = false;
  const created = new Map<string, ClusterNode>();
  const outcomes = claims.map((claim): ClaimOutcome => {
    const existing = created.get(claim.name) ?? stored(claim.name);
    if (existing && existing.identity !== claim.identity) {
      const error = new AmalgamError(
        'NAME_TAKEN',
        `node name ${claim.name} belongs to another machine`,
        { field: 'name' },
      );
      return { ok: false, error };
    }
    try {
      const allocation = allocateRange(next, claim.name, claim.capacity.contributedBytes);
      next = allocation.layout;
      layoutChanged ||= allocation.created;
    } catch (error) {
      return { ok: false, error };
    }
    if (existing) return { ok: true, node: existing, rejoined: true };
    const node = newNode(claim, now);
    created.set(claim.name, node);
    return { ok: true, node, rejoined: false };
  });
  return { layout: next, layoutChanged, created: [...created.values()], outcomes };
}

function newNode(claim: NodeClaim, now: number): ClusterNode {
  return {
    name: claim.name,
    identity: claim.identity,
    roles: claim.roles ?? [],
    labels: claim.labels ?? {},
    capacity: claim.capacity,
    state: 'Joining',
    joinedAt: now,
  };
}

/** A live heartbeat makes a Joining or NotReady node Ready; Draining stays the admin's intent. */
export function stateAfterHeartbeat(node: ClusterNode): NodeState {
  return node.state === 'Joining' || node.state === 'NotReady' ? 'Ready' : node.state;
}

/**
 * A node whose liveness lease expired: a Ready node becomes NotReady, and so
 * does a Joining one once it has had one grace period to beat. Anything else
 * (alive, Draining, already NotReady) is left as it is: undefined.
 */
export function stateWhenSilent(
  node: ClusterNode,
  alive: boolean,
  graceMs: number,
  now: number,
): NodeState | undefined {
  if (alive) return undefined;
  const due = node.state === 'Ready' || (node.state === 'Joining' && now - node.joinedAt > graceMs);
  return due ? 'NotReady' : undefined;
}

/**
 * Removing a node frees its range (the only way a range is freed); refused
 * while a segment has extents on it. Returns the layout without its range.
 */
export function decideRemoval(
  name: string,
  layout: MemoryLayout | undefined,
  segments: SegmentTable | undefined,
): MemoryLayout | undefined {
  const inUse = segments ? segmentsOnNode(segments, name) : [];
  if (inUse.length > 0) {
    throw new AmalgamError('NODE_IN_USE', `${inUse.length} segments have extents on ${name}`, {
      segments: inUse.map((s) => s.id).slice(0, 20),
    });
  }
  return layout ? releaseRange(layout, name).layout : undefined;
}

function invalid(field: string, message: string): AmalgamError {
  return new AmalgamError('INVALID_ARGUMENT', `${field}: ${message}`, { field });
}

export function validateCapacity(capacity: NodeCapacity): void {
  if (typeof capacity !== 'object' || capacity === null) {
    throw invalid('capacity', 'an object is required');
  }
  const fields: [keyof NodeCapacity, number][] = [
    ['memoryBytes', 0],
    ['swapBytes', 0],
    ['contributedBytes', 1],
    ['cpus', 1],
    ['cpuSpeed', 0],
  ];
  for (const [field, min] of fields) {
    const value = capacity[field];
    if (!Number.isSafeInteger(value) || value < min) {
      throw invalid(`capacity.${field}`, `an integer >= ${min}`);
    }
  }
}

export function validateClaim(claim: {
  name: unknown;
  capacity: NodeCapacity;
  roles?: unknown;
  labels?: unknown;
}): void {
  validateNodeName(claim.name, 'name');
  validateCapacity(claim.capacity);
  const roles = claim.roles ?? [];
  if (!Array.isArray(roles) || roles.length > MAX_ROLES) {
    throw invalid('roles', `at most ${MAX_ROLES}`);
  }
  for (const [i, role] of roles.entries()) validateNodeName(role, `roles[${i}]`);
  validateLabels(claim.labels ?? {}, 'labels');
}

export function validateLoad(load: NodeLoad): void {
  if (typeof load !== 'object' || load === null) throw invalid('load', 'an object is required');
  for (const field of ['load1', 'load5', 'load15'] as const) {
    if (typeof load[field] !== 'number' || !Number.isFinite(load[field]) || load[field] < 0) {
      throw invalid(field, 'a number >= 0');
    }
  }
  for (const field of ['memoryUsedBytes', 'processes'] as const) {
    if (!Number.isSafeInteger(load[field]) || load[field] < 0) {
      throw invalid(field, 'an integer >= 0');
    }
  }
}

/** `host:port` with port 1-65535; an IPv6 host is in brackets (`[::1]:7000`). */
export function validatePageServerEndpoint(endpoint: PageServerAddress): PageServerAddress {
  if (typeof endpoint !== 'object' || endpoint === null || Array.isArray(endpoint)) {
    throw invalid('pageserver', 'an object {address, tls} is required');
  }
  if (typeof endpoint.tls !== 'boolean') throw invalid('pageserver.tls', 'a boolean is required');
  const address = endpoint.address;
  if (typeof address !== 'string') throw invalid('pageserver.address', 'host:port is required');
  const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})$/.exec(address);
  const port = match ? Number(match[2]) : 0;
  if (!match || (match[1] as string).length > MAX_HOST_LENGTH + 2 || port < 1 || port > 65535) {
    throw invalid('pageserver.address', 'host:port with port 1-65535 is required');
  }
  return { address, tls: endpoint.tls };
}
