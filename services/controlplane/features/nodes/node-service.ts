/**
 * Nodes: join (claim a unique name and a range of the network memory space
 * in one compare-and-swap), heartbeats (liveness through store leases),
 * drain and removal (the only way a range is ever freed). The decisions are
 * core/nodes.ts's; this service reads the records, decides with the time and
 * writes the result in one CAS (service/optimistic.ts).
 */

import type {
  JoinRequest,
  JoinResult,
  LoadReport,
  NodeState,
  NodeView,
  PageServerEndpoint,
} from '../../../api/contracts.ts';
import { AmalgamError } from '../../../core/errors.ts';
import { createMemoryLayout, type MemoryLayout } from '../../../core/memory-layout.ts';
import { validateNodeName } from '../../../core/names.ts';
import {
  decideClaims,
  decideRemoval,
  type NodeClaim,
  stateAfterHeartbeat,
  stateWhenSilent,
  validateClaim,
  validateLoad,
  validatePageServerEndpoint,
} from '../../../core/nodes.ts';
import { type CsrSigner, loadCsrSigner, nodeSubject } from '../../../pki/index.ts';
import type { InformerSource } from '../../../reconcile/index.ts';
import type { Mirror } from '../../../store/mirror.ts';
import type { Store } from '../../../store/store.ts';
import { authorize } from '../../service/authz.ts';
import { createBatcher, type Outcome } from '../../service/batcher.ts';
import type { Caller, NodeApi } from '../../service/contracts.ts';
import { putJson, readJson, updateAtomically } from '../../service/optimistic.ts';
import { storeSource } from '../../service/store-source.ts';
import { deviceKeys } from '../devices/records.ts';
import { memoryKeys, parseLayout, type SegmentsRecord } from '../memory/records.ts';
import type { TokenService } from '../tokens/token-service.ts';
import {
  type HeartbeatRecord,
  type NodeRecord,
  nodeKeys,
  parseHeartbeat,
  parseNode,
  toNodeView,
} from './records.ts';

export interface NodeServiceOptions {
  store: Store;
  ca: { certPem: string; keyPem: string };
  tokens: Pick<TokenService, 'authenticate'>;
  now: () => number;
  /** A node whose heartbeat lease (this long) expires is marked NotReady. */
  nodeGraceSeconds: number;
  certificateValidityDays?: number;
  /** A mirror of the control plane's keys: lists are served from it (linearizable, see Mirror). */
  mirror: Mirror;
}

/** Joins per CAS: 1 + N compares and N + 1 puts stay within etcd's 128 operations per txn. */
const JOIN_BATCH = 50;

interface Claimed {
  node: NodeRecord;
  rejoined: boolean;
  layout: MemoryLayout;
}

const nodeMissing = (name: string) => new AmalgamError('NODE_NOT_FOUND', name, { field: 'name' });

/**
 * Claims a name and a range for every join of a batch in ONE CAS over the
 * layout and those nodes' keys (core/nodes.ts `decideClaims`). Each join
 * keeps its own outcome: one taken name does not fail its neighbours.
 */
function claimNodes(
  options: NodeServiceOptions,
  claims: readonly NodeClaim[],
): Promise<Outcome<Claimed>[]> {
  const nodeKeysRead = [...new Set(claims.map((c) => nodeKeys.node(c.name)))];
  return updateAtomically(
    options.store,
    [memoryKeys.layout, ...nodeKeysRead],
    (current) => {
      const layout = current.get<MemoryLayout>(memoryKeys.layout) ?? createMemoryLayout();
      const stored = (name: string) => current.get<NodeRecord>(nodeKeys.node(name));
      const decision = decideClaims(layout, stored, claims, options.now());
      const writes = decision.created.map((node) => putJson(nodeKeys.node(node.name), node));
      if (decision.layoutChanged) writes.push(putJson(memoryKeys.layout, decision.layout));
      const result = decision.outcomes.map(
        (o): Outcome<Claimed> =>
          o.ok
            ? { ok: true, value: { node: o.node, rejoined: o.rejoined, layout: decision.layout } }
            : { ok: false, error: o.error },
      );
      return { writes, result };
    },
    { mirror: options.mirror },
  );
}

export class NodeService implements NodeApi {
  readonly #options: NodeServiceOptions;
  readonly #store: Store;
  readonly #mirror: Mirror;
  /** Parsing the CA and importing its key is most of the cost of signing: once per process. */
  readonly #csrSigner: Promise<CsrSigner>;
  readonly #claim: (claim: NodeClaim) => Promise<Claimed>;
  #listCache: { generation: number; views: NodeView[] } | undefined;

  constructor(options: NodeServiceOptions) {
    this.#options = options;
    this.#store = options.store;
    this.#mirror = options.mirror;
    this.#csrSigner = loadCsrSigner(options.ca);
    this.#csrSigner.catch(() => {}); // surfaced on first use
    this.#claim = createBatcher((claims: NodeClaim[]) => claimNodes(options, claims), JOIN_BATCH);
  }

  async join(request: JoinRequest): Promise<JoinResult> {
    validateClaim(request);
    await this.#options.tokens.authenticate(request.token, 'join');
    // Verify the CSR before claiming anything: a bad CSR must leave no trace.
    const signer = await this.#csrSigner;
    const csr = await signer.verify(request.csr);
    const { name } = request;
    const claim: NodeClaim = { name, identity: csr.publicKeyHash, capacity: request.capacity };
    if (request.roles !== undefined) claim.roles = request.roles;
    if (request.labels !== undefined) claim.labels = request.labels;
    const outcome = await this.#claim(claim);
    const subject = nodeSubject(name);
    const certificate = await signer.issue(csr, {
      commonName: subject.commonName,
      organization: subject.organization,
      usages: ['client', 'server'],
      validityDays: this.#options.certificateValidityDays ?? 365,
    });
    const heartbeat = await readJson<HeartbeatRecord>(this.#store, nodeKeys.heartbeat(name));
    return {
      node: toNodeView(outcome.node, outcome.layout, heartbeat),
      certificate,
      caCertificate: this.#options.ca.certPem,
      rejoined: outcome.rejoined,
    };
  }

  async list(caller: Caller): Promise<NodeView[]> {
    authorize(caller, 'listNodes');
    const mirror = this.#mirror;
    await mirror.sync();
    // Views are rebuilt only when something under the mirror changed; callers share them
    // read-only (which also lets a transport reuse their serialized form).
    if (this.#listCache?.generation === mirror.generation) return this.#listCache.views;
    const generation = mirror.generation;
    const layoutKv = mirror.get(memoryKeys.layout);
    const layout = layoutKv ? parseLayout(layoutKv.value) : undefined;
    const beats = new Map(
      mirror
        .range(nodeKeys.heartbeats)
        .map((kv) => [kv.key.slice(nodeKeys.heartbeats.length), parseHeartbeat(kv.value)]),
    );
    const views = mirror.range(nodeKeys.nodes).map((kv) => {
      const node = parseNode(kv.value);
      return toNodeView(node, layout, beats.get(node.name));
    });
    this.#listCache = { generation, views };
    return views;
  }

  async get(caller: Caller, name: string): Promise<NodeView> {
    authorize(caller, 'getNode');
    validateNodeName(name, 'name');
    return this.#viewOf(name);
  }

  async heartbeat(
    caller: Caller,
    name: string,
    load: LoadReport,
    pageserver?: PageServerEndpoint,
  ): Promise<NodeView> {
    authorize(caller, 'heartbeatNode', name);
    validateLoad(load);
    const endpoint = pageserver === undefined ? undefined : validatePageServerEndpoint(pageserver);
    await this.#readNode(name);
    // Each beat puts the liveness key on a fresh lease; the previous lease
    // then holds nothing and expires by itself. A beat without a page server
    // clears it: the node reports what is up now.
    const lease = await this.#store.grantLease(this.#options.nodeGraceSeconds, {
      keepAlive: false,
    });
    const beat: HeartbeatRecord = {
      at: this.#options.now(),
      load,
      ...(endpoint === undefined ? {} : { pageserver: endpoint }),
    };
    await this.#store.txn({
      compares: [{ key: nodeKeys.node(name), target: 'version', op: '>', value: 0 }],
      onSuccess: [putJson(nodeKeys.heartbeat(name), beat, lease.id)],
    });
    await this.#transition(name, stateAfterHeartbeat);
    return this.#viewOf(name);
  }

  async drain(caller: Caller, name: string): Promise<NodeView> {
    authorize(caller, 'drainNode');
    validateNodeName(name, 'name');
    await this.#transition(name, () => 'Draining');
    return this.#viewOf(name);
  }

  async remove(caller: Caller, name: string): Promise<void> {
    authorize(caller, 'removeNode');
    validateNodeName(name, 'name');
    const read = [nodeKeys.node(name), memoryKeys.layout, memoryKeys.segments];
    await updateAtomically(this.#store, read, (current) => {
      if (!current.get<NodeRecord>(nodeKeys.node(name))) throw nodeMissing(name);
      const layout = decideRemoval(
        name,
        current.get<MemoryLayout>(memoryKeys.layout),
        current.get<SegmentsRecord>(memoryKeys.segments)?.table,
      );
      const writes = [
        { type: 'delete' as const, key: nodeKeys.node(name) },
        { type: 'delete' as const, key: nodeKeys.heartbeat(name) },
        // Its devices go with it: `/remotedev/<name>/...` must not outlive the name.
        { type: 'delete' as const, key: deviceKeys.deviceTable(name) },
        ...(layout ? [putJson(memoryKeys.layout, layout)] : []),
      ];
      return { writes, result: undefined };
    });
  }

  // ---- for the controllers and the composition root (not part of the API) ----

  /** Every node record, by name: what the node lifecycle controller's informer follows. */
  nodeSource(): InformerSource<NodeRecord> {
    return storeSource(this.#store, nodeKeys.nodes, parseNode);
  }

  /** Every live heartbeat, by node name (a key goes with its lease). */
  heartbeatSource(): InformerSource<HeartbeatRecord> {
    return storeSource(this.#store, nodeKeys.heartbeats, parseHeartbeat);
  }

  /**
   * Marks `name` NotReady when its heartbeat lease has expired: one CAS over
   * the node and its liveness key, so a heartbeat that races it wins. Returns
   * the state it left, or undefined when nothing changed.
   */
  async markNotReadyIfSilent(name: string): Promise<NodeState | undefined> {
    const nodeKey = nodeKeys.node(name);
    const beatKey = nodeKeys.heartbeat(name);
    const graceMs = this.#options.nodeGraceSeconds * 1000;
    return updateAtomically(this.#store, [nodeKey, beatKey], (current) => {
      const node = current.get<NodeRecord>(nodeKey);
      if (!node) return { writes: [], result: undefined };
      const alive = current.get<HeartbeatRecord>(beatKey) !== undefined;
      const next = stateWhenSilent(node, alive, graceMs, this.#options.now());
      if (next === undefined || next === node.state) return { writes: [], result: undefined };
      return { writes: [putJson(nodeKey, { ...node, state: next })], result: node.state };
    });
  }

  /** How many nodes are in each state, from the mirror (for /metrics). */
  async countByState(): Promise<Record<NodeState, number>> {
    await this.#mirror.sync();
    const counts: Record<NodeState, number> = {
      Joining: 0,
      Ready: 0,
      NotReady: 0,
      Draining: 0,
      Removed: 0,
    };
    for (const kv of this.#mirror.range(nodeKeys.nodes)) counts[parseNode(kv.value).state]++;
    return counts;
  }

  /** The number of nodes, read from the store itself (cluster info). */
  async count(): Promise<number> {
    const { kvs } = await this.#store.range(nodeKeys.nodes);
    return kvs.length;
  }

  async #readNode(name: string): Promise<NodeRecord> {
    const node = await readJson<NodeRecord>(this.#store, nodeKeys.node(name));
    if (!node) throw nodeMissing(name);
    return node;
  }

  async #viewOf(name: string): Promise<NodeView> {
    const [node, layout, heartbeat] = await Promise.all([
      this.#readNode(name),
      readJson<MemoryLayout>(this.#store, memoryKeys.layout),
      readJson<HeartbeatRecord>(this.#store, nodeKeys.heartbeat(name)),
    ]);
    return toNodeView(node, layout, heartbeat);
  }

  /** Moves a node to the state `decide` gives, in one CAS; returns the record as stored. */
  #transition(name: string, decide: (node: NodeRecord) => NodeState): Promise<NodeRecord> {
    const key = nodeKeys.node(name);
    return updateAtomically(this.#store, [key], (current) => {
      const node = current.get<NodeRecord>(key);
      if (!node) throw nodeMissing(name);
      const state = decide(node);
      if (state === node.state) return { writes: [], result: node };
      const next = { ...node, state };
      return { writes: [putJson(key, next)], result: next };
    });
  }
}
