/**
 * The network process space: PID blocks, process records, placement, reports
 * from the agents and migration decisions. Each call reads, lets a pure
 * function decide (core/processes.ts, core/placement.ts, process-decisions.ts)
 * and commits the result in ONE CAS through service/optimistic.ts; a change of
 * home also bumps the record's epoch, the fencing token agents act on.
 */
import type { Logger } from 'pino';
import type {
  ClaimPidBlockRequest,
  CreateProcessRequest,
  MigrateProcessRequest,
  ProcessLoadReport,
  ProcessLoadView,
  ProcessReport,
  ProcessView,
} from '../../../api/contracts.ts';
import { AmalgamError } from '../../../core/errors.ts';
import { validateNodeName } from '../../../core/names.ts';
import { DEFAULT_PID_BLOCK_SIZE, type PidBlock } from '../../../core/pid-blocks.ts';
import { placeProcess } from '../../../core/placement.ts';
import {
  decideMigration,
  killProcess,
  newProcessRecord,
  type ProcessRecord,
} from '../../../core/processes.ts';
import type { Move } from '../../../core/rebalance.ts';
import type { Mirror } from '../../../store/mirror.ts';
import type { Store } from '../../../store/store.ts';
import { actsOnAnything, authorize, ownerName } from '../../service/authz.ts';
import type { Caller, ProcessService } from '../../service/contracts.ts';
import { type Current, putJson, updateAtomically } from '../../service/optimistic.ts';
import { nodeKeys } from '../nodes/records.ts';
import { PidBlockService } from './pid-block-service.ts';
import {
  applyReport,
  creatorRole,
  existingOnCreate,
  newProcessOf,
  processNotFound,
  validateCpid,
  validateReportEvent,
} from './process-decisions.ts';
import { type ProcessSnapshot, ProcessSnapshots } from './process-snapshot.ts';
import { processIn, processKeys, readProcessRecord, toProcessView } from './records.ts';

export interface ProcessServiceOptions {
  store: Store;
  mirror: Mirror;
  now: () => number;
  /** Who this replica is, as the owner of its own PID blocks. */
  replicaId: string;
  /** A target takes over from a source without a lease only this long after first seeing it gone. */
  fenceMarginMs: number;
  logger: Logger;
  /** quotas.pidBlocksPerOwner (limits.ts); default its default. */
  pidBlocksPerOwner?: number;
}

/** What the rebalancer needs beyond the transports' calls. */
export interface ProcessServiceInternal extends ProcessService {
  /**
   * Commits a move the rebalancer planned from a snapshot in which the record
   * had `epoch`, if it is still so (else null: the next pass sees it again).
   */
  commitRebalanceMove(
    move: Pick<Move, 'cpid' | 'from' | 'to'>,
    epoch: number,
  ): Promise<ProcessRecord | null>;
  /** Nodes as placement and the rebalancer see them, every record and every load report. */
  snapshot(): Promise<ProcessSnapshot>;
}

/** A change of one record, decided from it (and the other keys read in the same CAS). */
type Change = (record: ProcessRecord, current: Current) => ProcessRecord;

export class ProcessSpace implements ProcessServiceInternal {
  private readonly store: Store;
  private readonly mirror: Mirror;
  private readonly now: () => number;
  private readonly logger: Logger;
  private readonly fenceMarginMs: number;
  private readonly pids: PidBlockService;
  private readonly snapshots: ProcessSnapshots;

  constructor(options: ProcessServiceOptions) {
    this.store = options.store;
    this.mirror = options.mirror;
    this.now = options.now;
    this.logger = options.logger;
    this.fenceMarginMs = options.fenceMarginMs;
    this.pids = new PidBlockService(
      this.store,
      this.now,
      `clusterd:${options.replicaId}`,
      options.pidBlocksPerOwner,
    );
    this.snapshots = new ProcessSnapshots(this.mirror, this.now);
  }

  async claimPidBlock(caller: Caller, request: ClaimPidBlockRequest): Promise<PidBlock> {
    authorize(caller, 'claimPidBlock');
    const block = await this.pids.claim(ownerName(caller), request.size ?? DEFAULT_PID_BLOCK_SIZE);
    this.logger.debug({ block }, 'PID block claimed');
    return block;
  }

  async listPidBlocks(caller: Caller): Promise<PidBlock[]> {
    authorize(caller, 'listPidBlocks');
    return this.pids.list();
  }

  async create(caller: Caller, request: CreateProcessRequest): Promise<ProcessView> {
    // A node places work only on itself (permissions.ts says why): without a
    // node in the request its process goes to itself, never elsewhere.
    const node = request.node ?? (caller.kind === 'node' ? caller.name : undefined);
    authorize(caller, 'createProcess', node);
    const wanted = newProcessOf(request);
    const owner = ownerName(caller);
    const cpid =
      request.cpid === undefined
        ? await this.pids.nextOwnPid()
        : await this.checkPidOwner(request.cpid, owner);
    // A pinned process needs no demand figures: skip reading every record.
    const { nodes } = await this.snapshots.take(node === undefined);
    const home = placeProcess(nodes, {
      cpus: wanted.cpus,
      labels: wanted.labels,
      ...(node === undefined ? {} : { node }),
    });
    const record = newProcessRecord(wanted, cpid, home, owner, this.now(), creatorRole(caller));
    const key = processKeys.process(cpid);
    const result = await updateAtomically(this.store, [key], (current) => {
      const existing = processIn(current, cpid);
      if (existing) return { writes: [], result: existingOnCreate(existing, wanted, owner) };
      return { writes: [putJson(key, record)], result: record };
    });
    if (result === record)
      this.logger.info({ cpid, home, command: wanted.command }, 'process created');
    return toProcessView(result);
  }

  async list(caller: Caller): Promise<ProcessView[]> {
    authorize(caller, 'listProcesses');
    await this.mirror.sync();
    return this.snapshots.records().map(toProcessView);
  }

  async get(caller: Caller, cpid: number): Promise<ProcessView> {
    authorize(caller, 'getProcess');
    validateCpid(cpid);
    return toProcessView(await this.read(cpid));
  }

  async kill(caller: Caller, cpid: number): Promise<ProcessView> {
    authorize(caller, 'killProcess');
    validateCpid(cpid);
    const next = await this.update(cpid, (record) => {
      if (!actsOnAnything(caller) && record.owner !== ownerName(caller)) {
        throw new AmalgamError('FORBIDDEN', `process ${cpid} belongs to ${record.owner}`);
      }
      return killProcess(record, this.now());
    });
    return toProcessView(next);
  }

  async migrate(
    caller: Caller,
    cpid: number,
    request: MigrateProcessRequest,
  ): Promise<ProcessView> {
    authorize(caller, 'migrateProcess');
    validateCpid(cpid);
    validateNodeName(request.to, 'to');
    await this.read(cpid);
    await this.requireReadyNode(request.to);
    const next = await this.update(cpid, (record) =>
      decideMigration(record, request.to, 'manual', this.now()),
    );
    return toProcessView(next);
  }

  async report(
    caller: Caller,
    node: string,
    cpid: number,
    report: ProcessReport,
  ): Promise<ProcessView> {
    authorize(caller, 'reportProcess', node);
    validateCpid(cpid);
    validateReportEvent(report);
    const context = { node, now: this.now(), sourceAlive: true, fenceMarginMs: this.fenceMarginMs };
    if (report.event === 'fence-source')
      return toProcessView(await this.fence(cpid, report, context));
    return toProcessView(await this.update(cpid, (r) => applyReport(r, report, context)));
  }

  async reportLoad(
    caller: Caller,
    name: string,
    report: ProcessLoadReport,
  ): Promise<ProcessLoadView> {
    authorize(caller, 'reportProcessLoad', name);
    const view: ProcessLoadView = {
      node: name,
      reportedAt: this.now(),
      cpus: report.cpus,
      cpuSpeed: report.cpuSpeed,
      load1: report.load1,
      runnable: report.runnable,
      agentAddress: report.agentAddress ?? null,
      processes: report.processes,
    };
    // The node's own key, written by the node only: last report wins, no compare.
    return updateAtomically(this.store, [], () => ({
      writes: [putJson(processKeys.load(name), view)],
      result: view,
    }));
  }

  async listLoads(caller: Caller): Promise<ProcessLoadView[]> {
    authorize(caller, 'listProcessLoads');
    await this.mirror.sync();
    return this.snapshots.loads();
  }

  async commitRebalanceMove(
    move: Pick<Move, 'cpid' | 'from' | 'to'>,
    epoch: number,
  ): Promise<ProcessRecord | null> {
    try {
      return await this.update(move.cpid, (record) => {
        if (record.epoch !== epoch || record.home !== move.from) return record;
        return decideMigration(record, move.to, 'rebalance', this.now());
      });
    } catch (err) {
      if (err instanceof AmalgamError && err.code !== 'NO_QUORUM') return null;
      throw err;
    }
  }

  snapshot(): Promise<ProcessSnapshot> {
    return this.snapshots.take();
  }

  /**
   * The target asks to fence a silent source: the source's liveness key is
   * compared in the same CAS, so a beat that lands meanwhile makes it fail and
   * the decision is made again.
   */
  private async fence(
    cpid: number,
    report: ProcessReport,
    context: Parameters<typeof applyReport>[2],
  ): Promise<ProcessRecord> {
    const seen = await this.read(cpid);
    const from = seen.migration?.from;
    const beat = from === undefined ? undefined : nodeKeys.heartbeat(from);
    const next = await this.update(
      cpid,
      (r, current) => {
        if (r.migration?.from !== from) return r; // moved on; the caller re-reads
        const sourceAlive = beat === undefined || current.get(beat) !== undefined;
        return applyReport(r, report, { ...context, sourceAlive });
      },
      beat === undefined ? [] : [beat],
    );
    if (next.migration?.sourceStopped === 'fenced' && seen.migration?.sourceStopped === null) {
      this.logger.warn(
        { cpid, from, to: context.node },
        'migration source fenced: its lease expired',
      );
    }
    return next;
  }

  /** `cpid` if it is from a block of `owner`, else FORBIDDEN. */
  private async checkPidOwner(cpid: number, owner: string): Promise<number> {
    const blockOwner = await this.pids.ownerOf(cpid);
    if (blockOwner !== owner) {
      throw new AmalgamError('FORBIDDEN', `cluster PID ${cpid} is not from a block of ${owner}`, {
        field: 'cpid',
        blockOwner: blockOwner ?? null,
      });
    }
    return cpid;
  }

  private async read(cpid: number): Promise<ProcessRecord> {
    const record = await readProcessRecord(this.store, cpid);
    if (!record) throw processNotFound(cpid);
    return record;
  }

  /** One CAS on the record (and `extraKeys`, read and compared with it). */
  private update(cpid: number, change: Change, extraKeys: string[] = []): Promise<ProcessRecord> {
    const key = processKeys.process(cpid);
    return updateAtomically(this.store, [key, ...extraKeys], (current) => {
      const record = processIn(current, cpid);
      if (!record) throw processNotFound(cpid);
      const next = change(record, current);
      return { writes: next === record ? [] : [putJson(key, next)], result: next };
    });
  }

  private async requireReadyNode(name: string): Promise<void> {
    const { nodes } = await this.snapshots.take(false);
    const node = nodes.find((n) => n.name === name);
    if (!node) throw new AmalgamError('NODE_NOT_FOUND', name, { field: 'to' });
    if (!node.ready) {
      throw new AmalgamError('NO_PLACEMENT', `node ${name} is not Ready`, { node: name });
    }
  }
}

export function createProcessService(options: ProcessServiceOptions): ProcessServiceInternal {
  return new ProcessSpace(options);
}
