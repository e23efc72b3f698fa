/**
 * Nodes: join (claim a unique name and a range of the network memory space
 * and spend a use of the token in one compare-and-swap; rate-limited per
 * source address; at most `maxContributedBytes` per join), heartbeats
 * (liveness through store leases), drain and removal (the only way a range is
 * ever freed; it leaves a tombstone of the node's key, so the key's
 * certificates are refused and the key never joins again while they could be
 * valid). The decisions are core/nodes.ts's and join-claims.ts's; this
 * service reads the records, decides with the time and writes the result in
 * one CAS (service/optimistic.ts).
 */

import type {
  JoinRequest,
  JoinResult,
  LoadReport,
  NodeState,
  NodeView,
  PageServerEndpoint,
} from '../../../api/contracts.ts';
import { checkPublishedEndpoint } from '../../../core/endpoints.ts';
import { AmalgamError } from '../../../core/errors.ts';
import type { MemoryLayout } from '../../../core/memory-layout.ts';
import { validateNodeName } from '../../../core/names.ts';
import {
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
import { createBatcher } from '../../service/batcher.ts';
import type { Caller, NodeApi } from '../../service/contracts.ts';
import type { CredentialChecker } from '../../service/credentials.ts';
import { putJson, readJson, updateAtomically } from '../../service/optimistic.ts';
import { storeSource } from '../../service/store-source.ts';
import { deviceKeys } from '../devices/records.ts';
import { memoryKeys, parseLayout, type SegmentsRecord } from '../memory/records.ts';
import type { TokenService } from '../tokens/token-service.ts';
import { type Claimed, claimNodes } from './claim-nodes.ts';
import type { JoinClaim } from './join-claims.ts';
import {
  checkContribution,
  DEFAULT_JOIN_LIMITS,
  type JoinLimits,
  JoinRateLimiter,
} from './join-limits.ts';
import { nodeCredentialChecker } from './node-credentials.ts';
import {
  type HeartbeatRecord,
  type NodeRecord,
  nodeKeys,
  parseHeartbeat,
  parseNode,
  parseRevoked,
  type RevokedRecord,
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
  /** Limits of the door open to anyone (join); defaults: DEFAULT_JOIN_LIMITS. */
  join?: Partial<JoinLimits>;
  /** The cluster is one machine: page servers may publish loopback endpoints (core/endpoints.ts). */
  singleMachine?: boolean;
}

const DAY_MS = 24 * 3600 * 1000;
/** Expired tombstones a removal deletes in its own CAS (beyond, the next removal goes on). */
const PRUNE_PER_REMOVAL = 32;

/**
 * Joins per CAS. Worst case (a token per join): 1 + 3N compares (layout,
 * nodes, tokens, key tombstones) and 2N + 1 puts stay within etcd's 128
 * operations per txn.
 */
const JOIN_BATCH = 25;

const nodeMissing = (name: string) => new AmalgamError('NODE_NOT_FOUND', name, { field: 'name' });

export class NodeService implements NodeApi {
  readonly #options: NodeServiceOptions;
  readonly #store: Store;
  readonly #mirror: Mirror;
  /** Parsing the CA and importing its key is most of the cost of signing: once per process. */
  readonly #csrSigner: Promise<CsrSigner>;
  readonly #claim: (join: JoinClaim) => Promise<Claimed>;
  readonly #limits: JoinLimits;
  readonly #rate: JoinRateLimiter;
  #listCache: { generation: number; views: NodeView[] } | undefined;

  constructor(options: NodeServiceOptions) {
    this.#options = options;
    this.#store = options.store;
    this.#mirror = options.mirror;
    this.#csrSigner = loadCsrSigner(options.ca);
    this.#csrSigner.catch(() => {}); // surfaced on first use
    this.#claim = createBatcher((joins: JoinClaim[]) => claimNodes(options, joins), JOIN_BATCH);
    this.#limits = { ...DEFAULT_JOIN_LIMITS, ...options.join };
    this.#rate = new JoinRateLimiter(this.#limits);
  }

  /** `source`: the client's address (the doors give it; in-process callers have none). */
  async join(request: JoinRequest, source?: string): Promise<JoinResult> {
    if (source !== undefined) this.#rate.admit(source);
    validateClaim(request);
    checkContribution(request, this.#limits.maxContributedBytes);
    const token = await this.#options.tokens.authenticate(request.token, 'join');
    // Verify the CSR before claiming anything: a bad CSR must leave no trace.
    const signer = await this.#csrSigner;
    const csr = await signer.verify(request.csr);
    const { name } = request;
    const claim: NodeClaim = { name, identity: csr.publicKeyHash, capacity: request.capacity };
    if (request.roles !== undefined) claim.roles = request.roles;
    if (request.labels !== undefined) claim.labels = request.labels;
    const outcome = await this.#claim({ claim, tokenId: token.id });
    const subject = nodeSubject(name);
    const certificate = await signer.issue(csr, {
      commonName: subject.commonName,
      organization: subject.organization,
      usages: ['client', 'server'],
      validityDays: this.#validityDays(),
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
    if (endpoint)
      checkPublishedEndpoint(endpoint, { singleMachine: this.#options.singleMachine === true });
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
    // Only while the node exists: a beat racing its removal leaves nothing
    // (the unused lease expires by itself).
    const key = nodeKeys.node(name);
    await updateAtomically(this.#store, [key], (current) => {
      if (!current.get<NodeRecord>(key)) throw nodeMissing(name);
      return { writes: [putJson(nodeKeys.heartbeat(name), beat, lease.id)], result: undefined };
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
    const now = this.#options.now();
    const expired = this.#expiredTombstones(now);
    const read = [nodeKeys.node(name), memoryKeys.layout, memoryKeys.segments];
    await updateAtomically(this.#store, read, (current) => {
      const node = current.get<NodeRecord>(nodeKeys.node(name));
      if (!node) throw nodeMissing(name);
      const layout = decideRemoval(
        name,
        current.get<MemoryLayout>(memoryKeys.layout),
        current.get<SegmentsRecord>(memoryKeys.segments)?.table,
      );
      // Every certificate of its key is refused until the last one could expire.
      const tombstoneKey = nodeKeys.revokedKey(node.identity);
      const tombstone: RevokedRecord = {
        name,
        removedAt: now,
        expiresAt: now + this.#validityDays() * DAY_MS,
      };
      const writes = [
        { type: 'delete' as const, key: nodeKeys.node(name) },
        { type: 'delete' as const, key: nodeKeys.heartbeat(name) },
        // Its devices go with it: `/remotedev/<name>/...` must not outlive the name.
        { type: 'delete' as const, key: deviceKeys.deviceTable(name) },
        ...(layout ? [putJson(memoryKeys.layout, layout)] : []),
        putJson(tombstoneKey, tombstone),
        ...expired
          .filter((key) => key !== tombstoneKey)
          .map((key) => ({ type: 'delete' as const, key })),
      ];
      return { writes, result: undefined };
    });
  }

  // ---- for the doors and the composition root (not part of the API) ----

  /** The `node` credential checker (node-credentials.ts), over this service's mirror. */
  credentialChecker(): CredentialChecker {
    return nodeCredentialChecker(this.#mirror);
  }

  /** Counts of the join rate limiter, for /metrics. */
  joinRateStats() {
    return this.#rate.stats();
  }

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

  #validityDays(): number {
    return this.#options.certificateValidityDays ?? 365;
  }

  /** Tombstones past their expiry, from the mirror: a removal deletes a few in its CAS. */
  #expiredTombstones(now: number): string[] {
    const expired: string[] = [];
    for (const kv of this.#mirror.range(nodeKeys.revoked)) {
      if (expired.length >= PRUNE_PER_REMOVAL) break;
      if (now >= parseRevoked(kv.value).expiresAt) expired.push(kv.key);
    }
    return expired;
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
