/**
 * The network process space: a process record per cluster PID, and every
 * change of it as a pure function (record, input, now) -> next record. The
 * service layer commits each result by CAS on the record, so two writers can
 * never both move a process.
 *
 * The fencing token is `epoch`: it grows by one with every change of home
 * (a migration decision). A copy of a process runs for one epoch on one node;
 * reports carry that epoch and are refused when it is stale.
 *
 * Migration, in committed steps:
 *   1. decide (rebalancer or `clusteradm migrate`): home := to, epoch += 1,
 *      state := migrating, migration := {from, to, sourceStopped: null}.
 *      Nothing has acted yet.
 *   2. the source agent stops its copy (checkpoint: signal, wait for exit 0;
 *      restart: stop), ships the checkpoint directory to the target, then
 *      commits sourceStopped := checkpointed | stopped (CAS on the epoch).
 *      Or, when the source's liveness lease has expired, the target asks
 *      twice, a fence margin apart, and the second ask commits
 *      sourceStopped := fenced (the source's agent has killed its copies by
 *      then: an agent that cannot renew its lease for its TTL fences itself).
 *   3. the target starts its copy only then, and commits state := running.
 */
import { AmalgamError } from './errors.ts';

export type Migratable = 'checkpoint' | 'restart' | 'never';
export const MIGRATABLE: readonly Migratable[] = ['checkpoint', 'restart', 'never'];

export type ProcessState = 'pending' | 'running' | 'migrating' | 'exited' | 'failed' | 'killed';
export const TERMINAL_STATES: readonly ProcessState[] = ['exited', 'failed', 'killed'];

/** How the source's copy ended before the target may start: */
export type SourceStop =
  /** the process wrote its checkpoint and exited 0; the target has the directory */
  | 'checkpointed'
  /** the copy was stopped (restart semantics, or a checkpoint that failed): start fresh or from an older checkpoint */
  | 'stopped'
  /** the source's lease expired and a fence margin passed: its agent has killed its copies */
  | 'fenced';

export interface Migration {
  from: string;
  to: string;
  reason: 'manual' | 'rebalance';
  decidedAt: number;
  sourceStopped: SourceStop | null;
  /** When the target first saw the source without a liveness lease (fencing needs two looks). */
  sourceLostAt: number | null;
}

export interface ProcessEvent {
  at: number;
  epoch: number;
  node: string;
  event: string;
}

export interface ProcessRecord {
  cpid: number;
  command: string;
  args: string[];
  migratable: Migratable;
  /** CPUs the process uses (its demand for placement), default 1. */
  cpus: number;
  /** Placement constraint: every label here must be on the node. */
  labels: Record<string, string>;
  /** The node that runs (or is to run) the process. */
  home: string;
  /** The fencing token: +1 for every change of home. */
  epoch: number;
  state: ProcessState;
  migration: Migration | null;
  migrations: number;
  lastMovedAt: number | null;
  /** Starts of a copy (same or new home). */
  starts: number;
  owner: string;
  /** The user it runs as on its node (absent: the node's processes.defaultUser). */
  user?: string;
  /** The role of the caller that created it: root runs only for an admin's process. */
  createdBy?: string;
  createdAt: number;
  /** When the current copy started (null while none runs). */
  startedAt: number | null;
  exitCode: number | null;
  failure: string | null;
  /** The last events, newest last (bounded). */
  history: ProcessEvent[];
}

export const MAX_HISTORY = 16;

export interface NewProcess {
  command: string;
  args: string[];
  migratable: Migratable;
  cpus: number;
  labels: Record<string, string>;
  /** The user it runs as (absent: the node's default). */
  user?: string;
}

export function isTerminal(state: ProcessState): boolean {
  return TERMINAL_STATES.includes(state);
}

function withEvent(record: ProcessRecord, event: ProcessEvent): ProcessRecord {
  const history = [...record.history, event];
  return { ...record, history: history.slice(-MAX_HISTORY) };
}

export function newProcessRecord(
  input: NewProcess,
  cpid: number,
  home: string,
  owner: string,
  now: number,
  createdBy?: string,
): ProcessRecord {
  return {
    cpid,
    command: input.command,
    args: input.args,
    migratable: input.migratable,
    cpus: input.cpus,
    labels: input.labels,
    home,
    epoch: 1,
    state: 'pending',
    migration: null,
    migrations: 0,
    lastMovedAt: null,
    starts: 0,
    owner,
    ...(input.user === undefined ? {} : { user: input.user }),
    ...(createdBy === undefined ? {} : { createdBy }),
    createdAt: now,
    startedAt: null,
    exitCode: null,
    failure: null,
    history: [{ at: now, epoch: 1, node: home, event: 'created' }],
  };
}

function stale(record: ProcessRecord, epoch: number): AmalgamError {
  return new AmalgamError('STALE_EPOCH', `process ${record.cpid} is at epoch ${record.epoch}`, {
    cpid: record.cpid,
    epoch: record.epoch,
    given: epoch,
    home: record.home,
    state: record.state,
  });
}

function conflict(record: ProcessRecord, why: string): AmalgamError {
  return new AmalgamError('PROCESS_STATE_CONFLICT', `process ${record.cpid}: ${why}`, {
    cpid: record.cpid,
    state: record.state,
    epoch: record.epoch,
  });
}

/** Step 1: commit a move before anyone acts on it. */
export function decideMigration(
  record: ProcessRecord,
  to: string,
  reason: Migration['reason'],
  now: number,
): ProcessRecord {
  if (record.migratable === 'never') {
    throw new AmalgamError('PROCESS_NOT_MIGRATABLE', `process ${record.cpid} is migratable=never`, {
      cpid: record.cpid,
    });
  }
  if (record.state !== 'running' && record.state !== 'pending') {
    throw conflict(record, `only a pending or running process moves (it is ${record.state})`);
  }
  if (record.home === to) throw conflict(record, `it already runs on ${to}`);
  const epoch = record.epoch + 1;
  return withEvent(
    {
      ...record,
      home: to,
      epoch,
      state: 'migrating',
      migration: {
        from: record.home,
        to,
        reason,
        decidedAt: now,
        sourceStopped: null,
        sourceLostAt: null,
      },
      migrations: record.migrations + 1,
      lastMovedAt: now,
      startedAt: null,
    },
    { at: now, epoch, node: to, event: `migrate ${record.home}->${to} (${reason})` },
  );
}

/** Step 2: the source's copy is gone (and its checkpoint, if any, is at the target). */
export function confirmSourceStopped(
  record: ProcessRecord,
  node: string,
  epoch: number,
  how: 'checkpointed' | 'stopped',
  now: number,
): ProcessRecord {
  if (epoch !== record.epoch) throw stale(record, epoch);
  if (record.state !== 'migrating' || record.migration === null) {
    throw conflict(record, 'no migration is in progress');
  }
  if (record.migration.from !== node) throw conflict(record, `${node} is not the source`);
  if (record.migration.sourceStopped !== null) return record; // idempotent
  return withEvent(
    { ...record, migration: { ...record.migration, sourceStopped: how } },
    { at: now, epoch, node, event: `source ${how}` },
  );
}

/**
 * Step 2 without the source: the target asks with whether the source holds a
 * liveness lease (the service reads that in the same txn). The first ask
 * without one notes the time; an ask `marginMs` later fences. A live source
 * resets the clock.
 */
export function fenceSource(
  record: ProcessRecord,
  node: string,
  epoch: number,
  sourceAlive: boolean,
  marginMs: number,
  now: number,
): ProcessRecord {
  if (epoch !== record.epoch) throw stale(record, epoch);
  if (record.state !== 'migrating' || record.migration === null) {
    throw conflict(record, 'no migration is in progress');
  }
  if (record.migration.to !== node) throw conflict(record, `${node} is not the target`);
  const m = record.migration;
  if (m.sourceStopped !== null) return record;
  if (sourceAlive) {
    return m.sourceLostAt === null
      ? record
      : { ...record, migration: { ...m, sourceLostAt: null } };
  }
  if (m.sourceLostAt === null) return { ...record, migration: { ...m, sourceLostAt: now } };
  if (now - m.sourceLostAt < marginMs) return record;
  return withEvent(
    { ...record, migration: { ...m, sourceStopped: 'fenced' } },
    { at: now, epoch, node, event: `source ${m.from} fenced (lease expired)` },
  );
}

/** Step 3 (and a plain start): the home node's copy of this epoch runs. */
export function reportRunning(
  record: ProcessRecord,
  node: string,
  epoch: number,
  now: number,
): ProcessRecord {
  if (epoch !== record.epoch) throw stale(record, epoch);
  if (record.home !== node) throw conflict(record, `its home is ${record.home}, not ${node}`);
  if (isTerminal(record.state)) throw conflict(record, `it has ${record.state}`);
  if (record.state === 'migrating' && record.migration?.sourceStopped == null) {
    throw conflict(record, 'the source has not confirmed its copy is gone');
  }
  return withEvent(
    { ...record, state: 'running', migration: null, startedAt: now, starts: record.starts + 1 },
    { at: now, epoch, node, event: 'running' },
  );
}

/** The home node's copy ended by itself (exit code) or could not run (failure). */
export function reportEnded(
  record: ProcessRecord,
  node: string,
  epoch: number,
  outcome: { exitCode: number } | { failure: string },
  now: number,
): ProcessRecord {
  if (epoch !== record.epoch) throw stale(record, epoch);
  if (record.home !== node) throw conflict(record, `its home is ${record.home}, not ${node}`);
  if (isTerminal(record.state)) return record;
  const failed = 'failure' in outcome;
  return withEvent(
    {
      ...record,
      state: failed ? 'failed' : 'exited',
      migration: null,
      exitCode: failed ? null : outcome.exitCode,
      failure: failed ? outcome.failure : null,
      startedAt: null,
    },
    {
      at: now,
      epoch,
      node,
      event: failed ? `failed: ${outcome.failure}` : `exited ${outcome.exitCode}`,
    },
  );
}

/** `clusteradm kill`: final at once; agents stop any copy they hold. */
export function killProcess(record: ProcessRecord, now: number): ProcessRecord {
  if (isTerminal(record.state)) return record;
  return withEvent(
    { ...record, state: 'killed', migration: null, startedAt: null },
    { at: now, epoch: record.epoch, node: record.home, event: 'killed' },
  );
}
