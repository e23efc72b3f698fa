/**
 * The network process space: PID blocks, process records, placement, reports
 * from the agents and migration decisions. Every change of a record is one
 * CAS (optimistic.ts) on that record; a change of home also bumps its epoch,
 * the fencing token agents act on (see services/core/processes.ts).
 */
import type { Logger } from 'pino';
import type {
  CreateProcessRequest,
  ProcessLoadReport,
  ProcessLoadView,
  ProcessReport,
} from '../../../api/process-contracts.ts';
import { AmalgamError } from '../../../core/errors.ts';
import { validateLabels, validateNodeName } from '../../../core/names.ts';
import {
  blockOf,
  claimPidBlock,
  createPidBlockTable,
  DEFAULT_PID_BLOCK_SIZE,
  FIRST_CLUSTER_PID,
  MAX_CLUSTER_PID,
  PidAllocator,
  type PidBlock,
  type PidBlockTable,
} from '../../../core/pid-blocks.ts';
import { type PlacementNode, placeProcess } from '../../../core/placement.ts';
import {
  confirmSourceStopped,
  decideMigration,
  fenceSource,
  isTerminal,
  killProcess,
  MIGRATABLE,
  type Migration,
  newProcessRecord,
  type ProcessRecord,
  reportEnded,
  reportRunning,
} from '../../../core/processes.ts';
import type { Mirror } from '../../../store/mirror.ts';
import type { Store } from '../../../store/store.ts';
import { ownerName, requireAdmin, requireMember, requireSelf } from '../../service/authz.ts';
import type { ProcessService } from '../../service/contracts.ts';
import { putJson, readJson, updateAtomically } from '../../service/optimistic.ts';
import { type NodeRecord, nodeKeys } from '../nodes/records.ts';
import { processKeys } from './process-keys.ts';

export interface ProcessServiceOptions {
  store: Store;
  mirror: Mirror;
  now: () => number;
  /** Who this replica is, as the owner of its own PID blocks. */
  replicaId: string;
  /** A target takes over from a source without a lease only this long after first seeing it gone. */
  fenceMarginMs: number;
  logger: Logger;
}

/** What the rebalancer needs beyond the transports' calls. */
export interface ProcessServiceInternal extends ProcessService {
  /** Commits a move decided by the rebalancer, if the record is still as planned. */
  decide(cpid: number, from: string, to: string, epoch: number): Promise<ProcessRecord | null>;
  /** Nodes as placement and the rebalancer see them, and every active record (from the mirror). */
  snapshot(): Promise<{
    nodes: PlacementNode[];
    records: ProcessRecord[];
    loads: ProcessLoadView[];
  }>;
}

function invalid(field: string, rule: string): AmalgamError {
  return new AmalgamError('INVALID_ARGUMENT', `${field}: ${rule}`, { field });
}

function validateCpid(cpid: unknown, field = 'cpid'): asserts cpid is number {
  if (
    typeof cpid !== 'number' ||
    !Number.isSafeInteger(cpid) ||
    cpid < FIRST_CLUSTER_PID ||
    cpid > MAX_CLUSTER_PID
  ) {
    throw invalid(field, `a cluster PID from ${FIRST_CLUSTER_PID} to ${MAX_CLUSTER_PID}`);
  }
}

function notFound(cpid: number): AmalgamError {
  return new AmalgamError('PROCESS_NOT_FOUND', String(cpid), { cpid });
}

/** A load report is current this long; older ones say nothing about the node's CPUs. */
const LOAD_FRESH_MS = 60_000;

export function createProcessService(options: ProcessServiceOptions): ProcessServiceInternal {
  const { store, mirror, now, logger } = options;
  const parse = <T>(value: string) => JSON.parse(value) as T;

  let pidTable: PidBlockTable = createPidBlockTable();
  async function claim(owner: string, size: number): Promise<PidBlock> {
    return updateAtomically(store, [processKeys.pidBlocks], (current) => {
      const table = current.get<PidBlockTable>(processKeys.pidBlocks) ?? createPidBlockTable();
      const next = claimPidBlock(table, owner, size, now());
      return { writes: [putJson(processKeys.pidBlocks, next.table)], result: next.block };
    });
  }
  /** The block of `cpid`, from the cached table (blocks only ever get added: re-read on a miss). */
  async function ownerOfPid(cpid: number): Promise<string | undefined> {
    let block = blockOf(pidTable, cpid);
    if (!block) {
      pidTable = (await readJson<PidBlockTable>(store, processKeys.pidBlocks)) ?? pidTable;
      block = blockOf(pidTable, cpid);
    }
    return block?.owner;
  }
  const ownPids = new PidAllocator(() =>
    claim(`clusterd:${options.replicaId}`, DEFAULT_PID_BLOCK_SIZE),
  );

  /** Parsed records by key, reused while their revision is the same (placement reads them all). */
  const parsed = new Map<string, { rev: number; record: ProcessRecord }>();
  function allRecords(): ProcessRecord[] {
    const out: ProcessRecord[] = [];
    const seen = new Set<string>();
    for (const kv of mirror.range(processKeys.processes)) {
      seen.add(kv.key);
      let hit = parsed.get(kv.key);
      if (!hit || hit.rev !== kv.modRevision) {
        hit = { rev: kv.modRevision, record: parse<ProcessRecord>(kv.value) };
        parsed.set(kv.key, hit);
      }
      out.push(hit.record);
    }
    if (parsed.size > seen.size) for (const k of parsed.keys()) if (!seen.has(k)) parsed.delete(k);
    return out;
  }

  async function snapshot(withRecords = true) {
    await mirror.sync();
    const t = now();
    const alive = new Set(
      mirror.range(nodeKeys.heartbeats).map((kv) => kv.key.slice(nodeKeys.heartbeats.length)),
    );
    const loads = mirror.range(processKeys.loads).map((kv) => parse<ProcessLoadView>(kv.value));
    const loadOf = new Map(loads.map((l) => [l.node, l]));
    const records = withRecords ? allRecords() : [];
    const demand = new Map<string, number>();
    for (const r of records) {
      if (!isTerminal(r.state)) demand.set(r.home, (demand.get(r.home) ?? 0) + r.cpus);
    }
    const nodes: PlacementNode[] = mirror.range(nodeKeys.nodes).map((kv) => {
      const node = parse<NodeRecord>(kv.value);
      const load = loadOf.get(node.name);
      const fresh = load !== undefined && t - load.reportedAt < LOAD_FRESH_MS;
      return {
        name: node.name,
        cpus: fresh ? load.cpus : node.capacity.cpus,
        speed: fresh ? load.cpuSpeed : node.capacity.cpuSpeed,
        labels: node.labels,
        roles: node.roles,
        ready: alive.has(node.name) && node.state !== 'Draining' && node.state !== 'Removed',
        demand: demand.get(node.name) ?? 0,
      };
    });
    return { nodes, records, loads };
  }

  async function readRecord(cpid: number): Promise<ProcessRecord> {
    const record = await readJson<ProcessRecord>(store, processKeys.process(cpid));
    if (!record) throw notFound(cpid);
    return record;
  }

  function update(
    cpid: number,
    change: (record: ProcessRecord) => ProcessRecord,
    extraKeys: string[] = [],
    extra?: (get: <T>(key: string) => T | undefined) => void,
  ): Promise<ProcessRecord> {
    const key = processKeys.process(cpid);
    return updateAtomically(store, [key, ...extraKeys], (current) => {
      const record = current.get<ProcessRecord>(key);
      if (!record) throw notFound(cpid);
      extra?.(current.get);
      const next = change(record);
      return { writes: next === record ? [] : [putJson(key, next)], result: next };
    });
  }

  async function requireReadyNode(name: string): Promise<void> {
    const { nodes } = await snapshot(false);
    const node = nodes.find((n) => n.name === name);
    if (!node) throw new AmalgamError('NODE_NOT_FOUND', name, { field: 'to' });
    if (!node.ready) {
      throw new AmalgamError('NO_PLACEMENT', `node ${name} is not Ready`, { node: name });
    }
  }

  return {
    async claimPidBlock(caller, request) {
      requireMember(caller);
      const size = request.size ?? DEFAULT_PID_BLOCK_SIZE;
      const block = await claim(ownerName(caller), size);
      logger.debug({ block }, 'PID block claimed');
      return block;
    },

    async listPidBlocks(caller) {
      requireMember(caller);
      const table = await readJson<PidBlockTable>(store, processKeys.pidBlocks);
      return table?.blocks ?? [];
    },

    async create(caller, request: CreateProcessRequest) {
      requireMember(caller);
      if (typeof request.command !== 'string' || request.command.length === 0) {
        throw invalid('command', 'a non-empty string');
      }
      const args = request.args ?? [];
      const migratable = request.migratable ?? 'restart';
      if (!MIGRATABLE.includes(migratable)) throw invalid('migratable', MIGRATABLE.join('|'));
      const cpus = request.cpus ?? 1;
      if (!(cpus > 0 && cpus <= 1024)) throw invalid('cpus', 'a number in (0, 1024]');
      const labels = request.labels ?? {};
      validateLabels(labels, 'labels');
      if (request.node !== undefined) validateNodeName(request.node, 'node');
      const owner = ownerName(caller);
      let cpid: number;
      if (request.cpid !== undefined) {
        validateCpid(request.cpid);
        const blockOwner = await ownerOfPid(request.cpid);
        if (blockOwner !== owner) {
          throw new AmalgamError(
            'FORBIDDEN',
            `cluster PID ${request.cpid} is not from a block of ${owner}`,
            { field: 'cpid', blockOwner: blockOwner ?? null },
          );
        }
        cpid = request.cpid;
      } else {
        cpid = await ownPids.next();
      }
      // A pinned process needs no demand figures: skip reading every record.
      const { nodes } = await snapshot(request.node === undefined);
      const home = placeProcess(nodes, {
        cpus,
        labels,
        ...(request.node === undefined ? {} : { node: request.node }),
      });
      const record = newProcessRecord(
        { command: request.command, args, migratable, cpus, labels },
        cpid,
        home,
        owner,
        now(),
      );
      const key = processKeys.process(cpid);
      const res = await store.txn({
        compares: [{ key, target: 'version', op: '==', value: 0 }],
        onSuccess: [putJson(key, record)],
      });
      if (res.succeeded) {
        logger.info({ cpid, home, command: request.command }, 'process created');
        return record;
      }
      const existing = await readRecord(cpid);
      if (
        existing.owner === owner &&
        existing.command === request.command &&
        JSON.stringify(existing.args) === JSON.stringify(args)
      ) {
        return existing;
      }
      throw new AmalgamError('NAME_TAKEN', `cluster PID ${cpid} is another process`, {
        field: 'cpid',
      });
    },

    async list(caller) {
      requireMember(caller);
      await mirror.sync();
      return allRecords();
    },

    async get(caller, cpid) {
      requireMember(caller);
      validateCpid(cpid);
      return readRecord(cpid);
    },

    async kill(caller, cpid) {
      requireMember(caller);
      validateCpid(cpid);
      return update(cpid, (record) => {
        if (caller.kind !== 'admin' && record.owner !== ownerName(caller)) {
          throw new AmalgamError('FORBIDDEN', `process ${cpid} belongs to ${record.owner}`);
        }
        return killProcess(record, now());
      });
    },

    async migrate(caller, cpid, request) {
      requireAdmin(caller);
      validateCpid(cpid);
      validateNodeName(request.to, 'to');
      await readRecord(cpid);
      await requireReadyNode(request.to);
      return update(cpid, (record) => decideMigration(record, request.to, 'manual', now()));
    },

    async report(caller, node, cpid, report: ProcessReport) {
      requireSelf(caller, node);
      validateCpid(cpid);
      const { epoch } = report;
      const t = now();
      switch (report.event) {
        case 'running':
          return update(cpid, (r) => reportRunning(r, node, epoch, t));
        case 'exited':
          return update(cpid, (r) =>
            reportEnded(r, node, epoch, { exitCode: report.exitCode ?? 0 }, t),
          );
        case 'failed':
          return update(cpid, (r) =>
            reportEnded(r, node, epoch, { failure: report.failure ?? 'unknown' }, t),
          );
        case 'source-stopped':
          return update(cpid, (r) =>
            confirmSourceStopped(r, node, epoch, report.how ?? 'stopped', t),
          );
        case 'fence-source': {
          // The source's liveness key is compared in the same txn: a beat that
          // lands meanwhile makes the CAS fail and the decision is made again.
          const seen = await readRecord(cpid);
          const from = (seen.migration as Migration | null)?.from;
          if (from === undefined) return fenceSource(seen, node, epoch, true, 0, t);
          const beat = nodeKeys.heartbeat(from);
          let alive = true;
          const next = await update(
            cpid,
            (r) => {
              if (r.migration?.from !== from) return r; // moved on; the caller re-reads
              return fenceSource(r, node, epoch, alive, options.fenceMarginMs, t);
            },
            [beat],
            (get) => {
              alive = get(beat) !== undefined;
            },
          );
          if (
            next.migration?.sourceStopped === 'fenced' &&
            seen.migration?.sourceStopped === null
          ) {
            logger.warn({ cpid, from, to: node }, 'migration source fenced: its lease expired');
          }
          return next;
        }
        default:
          throw invalid('event', 'running|exited|failed|source-stopped|fence-source');
      }
    },

    async reportLoad(caller, name, report: ProcessLoadReport) {
      requireSelf(caller, name);
      const view: ProcessLoadView = {
        node: name,
        reportedAt: now(),
        cpus: report.cpus,
        cpuSpeed: report.cpuSpeed,
        load1: report.load1,
        runnable: report.runnable,
        agentAddress: report.agentAddress ?? null,
        processes: report.processes,
      };
      await store.txn({ compares: [], onSuccess: [putJson(processKeys.load(name), view)] });
      return view;
    },

    async listLoads(caller) {
      requireMember(caller);
      await mirror.sync();
      return mirror.range(processKeys.loads).map((kv) => parse<ProcessLoadView>(kv.value));
    },

    async decide(cpid, from, to, epoch) {
      try {
        return await update(cpid, (record) => {
          if (record.epoch !== epoch || record.home !== from) return record;
          return decideMigration(record, to, 'rebalance', now());
        });
      } catch (err) {
        if (err instanceof AmalgamError && err.code !== 'NO_QUORUM') return null;
        throw err;
      }
    },

    snapshot,
  };
}
