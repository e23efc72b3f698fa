/**
 * Nodes: join (claim a unique name and a range of the network memory space
 * in one compare-and-swap), heartbeats (liveness through store leases),
 * drain and removal (the only way a range is ever freed).
 */

import type {
  Caller,
  ControlPlane,
  JoinRequest,
  JoinResult,
  LoadReport,
  NodeCapacity,
  NodeState,
  NodeView,
  PageServerEndpoint,
} from '../../../api/contracts.ts';
import { AmalgamError } from '../../../core/errors.ts';
import {
  allocateRange,
  createMemoryLayout,
  type MemoryLayout,
  rangeOf,
  releaseRange,
} from '../../../core/memory-layout.ts';
import { validateLabels, validateNodeName } from '../../../core/names.ts';
import { segmentsOnNode } from '../../../core/segments.ts';
import { type CsrSigner, loadCsrSigner, nodeSubject } from '../../../pki/index.ts';
import type { Mirror } from '../../../store/mirror.ts';
import type { Store } from '../../../store/store.ts';
import { requireAdmin, requireMember, requireSelf } from '../../service/authz.ts';
import { createBatcher, type Outcome } from '../../service/batcher.ts';
import { keys } from '../../service/keys.ts';
import { putJson, readJson, updateAtomically } from '../../service/optimistic.ts';
import type { SegmentsRecord } from '../memory/memory-service.ts';
import type { createTokenService } from '../tokens/token-service.ts';

export interface NodeRecord {
  name: string;
  identity: string;
  roles: string[];
  labels: Record<string, string>;
  capacity: NodeCapacity;
  state: NodeState;
  joinedAt: number;
}

export interface HeartbeatRecord {
  at: number;
  load: LoadReport;
  pageserver?: PageServerEndpoint;
}

export interface NodeServiceOptions {
  store: Store;
  ca: { certPem: string; keyPem: string };
  tokens: ReturnType<typeof createTokenService>;
  now: () => number;
  /** A node whose heartbeat lease (this long) expires is marked NotReady. */
  nodeGraceSeconds: number;
  certificateValidityDays?: number;
  /** A mirror of the control plane's keys: lists are served from it (linearizable, see Mirror). */
  mirror: Mirror;
}

const MAX_ROLES = 16;
/** Joins per CAS: 1 + N compares and N + 1 puts stay within etcd's 128 operations per txn. */
const JOIN_BATCH = 50;

interface ClaimRequest {
  name: string;
  identity: string;
  request: JoinRequest;
}

interface Claimed {
  node: NodeRecord;
  rejoined: boolean;
  layout: MemoryLayout | undefined;
}

export function toNodeView(
  node: NodeRecord,
  layout: MemoryLayout | undefined,
  heartbeat: HeartbeatRecord | undefined,
): NodeView {
  const range = layout ? rangeOf(layout, node.name) : undefined;
  return {
    name: node.name,
    roles: node.roles,
    labels: node.labels,
    capacity: node.capacity,
    state: node.state,
    range: range ? { start: range.start, size: range.size } : { start: 0, size: 0 },
    identity: node.identity,
    joinedAt: new Date(node.joinedAt).toISOString(),
    lastHeartbeatAt: heartbeat ? new Date(heartbeat.at).toISOString() : null,
    load: heartbeat?.load ?? null,
    pageserver: heartbeat?.pageserver ?? null,
  };
}

function validateCapacity(capacity: NodeCapacity): void {
  if (typeof capacity !== 'object' || capacity === null) {
    throw new AmalgamError('INVALID_ARGUMENT', 'capacity: an object is required', {
      field: 'capacity',
    });
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
      throw new AmalgamError('INVALID_ARGUMENT', `capacity.${field}: an integer >= ${min}`, {
        field: `capacity.${field}`,
      });
    }
  }
}

function validateJoin(request: JoinRequest): void {
  validateNodeName(request.name, 'name');
  validateCapacity(request.capacity);
  const roles = request.roles ?? [];
  if (!Array.isArray(roles) || roles.length > MAX_ROLES) {
    throw new AmalgamError('INVALID_ARGUMENT', `roles: at most ${MAX_ROLES}`, { field: 'roles' });
  }
  for (const [i, role] of roles.entries()) validateNodeName(role, `roles[${i}]`);
  validateLabels(request.labels ?? {}, 'labels');
}

function validateLoad(load: LoadReport): void {
  if (typeof load !== 'object' || load === null) {
    throw new AmalgamError('INVALID_ARGUMENT', 'load: an object is required', { field: 'load' });
  }
  for (const field of ['load1', 'load5', 'load15'] as const) {
    if (typeof load[field] !== 'number' || !Number.isFinite(load[field]) || load[field] < 0) {
      throw new AmalgamError('INVALID_ARGUMENT', `${field}: a number >= 0`, { field });
    }
  }
  for (const field of ['memoryUsedBytes', 'processes'] as const) {
    if (!Number.isSafeInteger(load[field]) || load[field] < 0) {
      throw new AmalgamError('INVALID_ARGUMENT', `${field}: an integer >= 0`, { field });
    }
  }
}

const MAX_HOST_LENGTH = 253;

/** `host:port` with port 1-65535; an IPv6 host is in brackets (`[::1]:7000`). */
export function validatePageServerEndpoint(endpoint: PageServerEndpoint): PageServerEndpoint {
  const fail = (field: string, message: string): never => {
    throw new AmalgamError('INVALID_ARGUMENT', `${field}: ${message}`, { field });
  };
  if (typeof endpoint !== 'object' || endpoint === null || Array.isArray(endpoint)) {
    fail('pageserver', 'an object {address, tls} is required');
  }
  if (typeof endpoint.tls !== 'boolean') fail('pageserver.tls', 'a boolean is required');
  const address = endpoint.address;
  if (typeof address !== 'string') return fail('pageserver.address', 'host:port is required');
  const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})$/.exec(address);
  const port = match ? Number(match[2]) : 0;
  if (!match || (match[1] as string).length > MAX_HOST_LENGTH + 2 || port < 1 || port > 65535) {
    fail('pageserver.address', 'host:port with port 1-65535 is required');
  }
  return { address, tls: endpoint.tls };
}

export function createNodeService(options: NodeServiceOptions): ControlPlane['nodes'] {
  const { store, now } = options;
  let listCache: { generation: number; views: NodeView[] } | undefined;
  // Parsing the CA and importing its key is most of the cost of signing: once per process.
  const csrSigner: Promise<CsrSigner> = loadCsrSigner(options.ca);
  csrSigner.catch(() => {}); // surfaced on first use

  async function readNode(name: string): Promise<NodeRecord> {
    const node = await readJson<NodeRecord>(store, keys.node(name));
    if (!node) throw new AmalgamError('NODE_NOT_FOUND', name, { field: 'name' });
    return node;
  }

  async function viewOf(name: string): Promise<NodeView> {
    const [node, layout, heartbeat] = await Promise.all([
      readNode(name),
      readJson<MemoryLayout>(store, keys.layout),
      readJson<HeartbeatRecord>(store, keys.heartbeat(name)),
    ]);
    return toNodeView(node, layout, heartbeat);
  }

  /** Moves a node to `state` if `allowed(current)`; returns the record as stored. */
  function transition(name: string, decide: (node: NodeRecord) => NodeState): Promise<NodeRecord> {
    return updateAtomically(store, [keys.node(name)], (current) => {
      const node = current.get<NodeRecord>(keys.node(name));
      if (!node) throw new AmalgamError('NODE_NOT_FOUND', name, { field: 'name' });
      const state = decide(node);
      if (state === node.state) return { writes: [], result: node };
      const next = { ...node, state };
      return { writes: [putJson(keys.node(name), next)], result: next };
    });
  }

  /**
   * Claims a name and a range for every join of a batch in ONE CAS over the
   * layout and those nodes' keys. Each join keeps its own outcome: one taken
   * name does not fail its neighbours.
   */
  const claim = createBatcher<ClaimRequest, Claimed>(async (claims) => {
    const nodeKeys = [...new Set(claims.map((c) => keys.node(c.name)))];
    return updateAtomically(
      store,
      [keys.layout, ...nodeKeys],
      (current) => {
        let layout = current.get<MemoryLayout>(keys.layout) ?? createMemoryLayout();
        const written = new Map<string, NodeRecord>();
        let layoutChanged = false;
        const outcomes = claims.map((c): Outcome<Claimed> => {
          try {
            const stored = written.get(c.name) ?? current.get<NodeRecord>(keys.node(c.name));
            if (stored && stored.identity !== c.identity) {
              throw new AmalgamError(
                'NAME_TAKEN',
                `node name ${c.name} belongs to another machine`,
                {
                  field: 'name',
                },
              );
            }
            // The same identity again gets the same range, whatever size it asks for now.
            const allocation = allocateRange(layout, c.name, c.request.capacity.contributedBytes);
            layout = allocation.layout;
            layoutChanged ||= allocation.created;
            const node: NodeRecord = stored ?? {
              name: c.name,
              identity: c.identity,
              roles: c.request.roles ?? [],
              labels: c.request.labels ?? {},
              capacity: c.request.capacity,
              state: 'Joining',
              joinedAt: now(),
            };
            if (!stored) written.set(c.name, node);
            return { ok: true, value: { node, rejoined: stored !== undefined, layout: undefined } };
          } catch (error) {
            return { ok: false, error };
          }
        });
        const writes = [...written.values()].map((node) => putJson(keys.node(node.name), node));
        if (layoutChanged) writes.push(putJson(keys.layout, layout));
        const finalLayout = layout;
        for (const o of outcomes) if (o.ok) o.value.layout = finalLayout;
        return { writes, result: outcomes };
      },
      { mirror: options.mirror },
    );
  }, JOIN_BATCH);

  return {
    async join(request: JoinRequest): Promise<JoinResult> {
      validateJoin(request);
      await options.tokens.authenticate(request.token, 'join');
      // Verify the CSR before claiming anything: a bad CSR must leave no trace.
      const csr = await (await csrSigner).verify(request.csr);
      const identity = csr.publicKeyHash;
      const name = request.name;

      const outcome = await claim({ name, identity, request });
      const subject = nodeSubject(name);
      const certificate = await (await csrSigner).issue(csr, {
        commonName: subject.commonName,
        organization: subject.organization,
        dnsNames: [name],
        usages: ['client', 'server'],
        validityDays: options.certificateValidityDays ?? 365,
      });
      const heartbeat = await readJson<HeartbeatRecord>(store, keys.heartbeat(name));
      return {
        node: toNodeView(outcome.node, outcome.layout, heartbeat),
        certificate,
        caCertificate: options.ca.certPem,
        rejoined: outcome.rejoined,
      };
    },

    async list(caller: Caller): Promise<NodeView[]> {
      requireMember(caller);
      const { mirror } = options;
      await mirror.sync();
      // Views are rebuilt only when something under the mirror changed; callers share them
      // read-only (which also lets a transport reuse their serialized form).
      if (listCache?.generation === mirror.generation) return listCache.views;
      const generation = mirror.generation;
      const layoutKv = mirror.get(keys.layout);
      const layout = layoutKv ? (JSON.parse(layoutKv.value) as MemoryLayout) : undefined;
      const beats = new Map(
        mirror
          .range(keys.heartbeats)
          .map((kv) => [
            kv.key.slice(keys.heartbeats.length),
            JSON.parse(kv.value) as HeartbeatRecord,
          ]),
      );
      const views = mirror.range(keys.nodes).map((kv) => {
        const node = JSON.parse(kv.value) as NodeRecord;
        return toNodeView(node, layout, beats.get(node.name));
      });
      listCache = { generation, views };
      return views;
    },

    async get(caller: Caller, name: string): Promise<NodeView> {
      requireMember(caller);
      validateNodeName(name, 'name');
      return viewOf(name);
    },

    async heartbeat(
      caller: Caller,
      name: string,
      load: LoadReport,
      pageserver?: PageServerEndpoint,
    ): Promise<NodeView> {
      requireSelf(caller, name);
      validateLoad(load);
      const endpoint =
        pageserver === undefined ? undefined : validatePageServerEndpoint(pageserver);
      await readNode(name);
      // Each beat puts the liveness key on a fresh lease; the previous lease
      // then holds nothing and expires by itself. A beat without a page server
      // clears it: the node reports what is up now.
      const lease = await options.store.grantLease(options.nodeGraceSeconds, { keepAlive: false });
      const beat: HeartbeatRecord = {
        at: now(),
        load,
        ...(endpoint === undefined ? {} : { pageserver: endpoint }),
      };
      await store.txn({
        compares: [{ key: keys.node(name), target: 'version', op: '>', value: 0 }],
        onSuccess: [putJson(keys.heartbeat(name), beat, lease.id)],
      });
      await transition(name, (node) =>
        node.state === 'Joining' || node.state === 'NotReady' ? 'Ready' : node.state,
      );
      return viewOf(name);
    },

    async drain(caller: Caller, name: string): Promise<NodeView> {
      requireAdmin(caller);
      validateNodeName(name, 'name');
      await transition(name, () => 'Draining');
      return viewOf(name);
    },

    async remove(caller: Caller, name: string): Promise<void> {
      requireAdmin(caller);
      validateNodeName(name, 'name');
      await updateAtomically(store, [keys.node(name), keys.layout, keys.segments], (current) => {
        if (!current.get<NodeRecord>(keys.node(name))) {
          throw new AmalgamError('NODE_NOT_FOUND', name, { field: 'name' });
        }
        const segments = current.get<SegmentsRecord>(keys.segments);
        const inUse = segments ? segmentsOnNode(segments.table, name) : [];
        if (inUse.length > 0) {
          throw new AmalgamError(
            'NODE_IN_USE',
            `${inUse.length} segments have extents on ${name}`,
            {
              segments: inUse.map((s) => s.id).slice(0, 20),
            },
          );
        }
        const layout = current.get<MemoryLayout>(keys.layout);
        const writes = [
          { type: 'delete' as const, key: keys.node(name) },
          { type: 'delete' as const, key: keys.heartbeat(name) },
          // Its devices go with it: `/remotedev/<name>/...` must not outlive the name.
          { type: 'delete' as const, key: keys.deviceTable(name) },
        ];
        if (layout) writes.push(putJson(keys.layout, releaseRange(layout, name).layout) as never);
        return { writes, result: undefined };
      });
    },
  };
}
