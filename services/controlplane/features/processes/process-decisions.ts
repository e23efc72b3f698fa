/**
 * The process service's pure parts: checking a request and choosing which
 * step of the state machine (core/processes.ts) a report or a create is. No
 * I/O: the service reads, calls these, and commits the result in one CAS.
 */

import type { CreateProcessRequest, ProcessReport } from '../../../api/contracts.ts';
import { AmalgamError } from '../../../core/errors.ts';
import { validateLabels, validateNodeName } from '../../../core/names.ts';
import { FIRST_CLUSTER_PID, MAX_CLUSTER_PID } from '../../../core/pid-blocks.ts';
import {
  confirmSourceStopped,
  fenceSource,
  MIGRATABLE,
  type NewProcess,
  type ProcessRecord,
  reportEnded,
  reportRunning,
} from '../../../core/processes.ts';
import { roleOf } from '../../service/authz.ts';
import type { Caller } from '../../service/contracts.ts';

export function invalid(field: string, rule: string): AmalgamError {
  return new AmalgamError('INVALID_ARGUMENT', `${field}: ${rule}`, { field });
}

export function processNotFound(cpid: number): AmalgamError {
  return new AmalgamError('PROCESS_NOT_FOUND', String(cpid), { cpid });
}

export function validateCpid(cpid: unknown, field = 'cpid'): asserts cpid is number {
  if (
    typeof cpid !== 'number' ||
    !Number.isSafeInteger(cpid) ||
    cpid < FIRST_CLUSTER_PID ||
    cpid > MAX_CLUSTER_PID
  ) {
    throw invalid(field, `a cluster PID from ${FIRST_CLUSTER_PID} to ${MAX_CLUSTER_PID}`);
  }
}

/** A create request with its defaults filled in, or INVALID_ARGUMENT naming the field. */
const PROCESS_USER = /^[a-z_][a-z0-9_.-]{0,31}$/;

/** The role recorded as a process's creator (`createdBy`): the agent runs root only for `admin`. */
/** The role recorded as the process's creator (the agent runs root only for 'admin'). */
export const creatorRole = (caller: Caller): string => roleOf(caller) ?? 'anonymous';

export function newProcessOf(request: CreateProcessRequest): NewProcess {
  if (typeof request.command !== 'string' || request.command.length === 0) {
    throw invalid('command', 'a non-empty string');
  }
  const migratable = request.migratable ?? 'restart';
  if (!MIGRATABLE.includes(migratable)) throw invalid('migratable', MIGRATABLE.join('|'));
  const cpus = request.cpus ?? 1;
  if (!(cpus > 0 && cpus <= 1024)) throw invalid('cpus', 'a number in (0, 1024]');
  const labels = request.labels ?? {};
  validateLabels(labels, 'labels');
  if (request.node !== undefined) validateNodeName(request.node, 'node');
  if (request.cpid !== undefined) validateCpid(request.cpid);
  if (request.user !== undefined && !PROCESS_USER.test(request.user)) {
    throw invalid('user', 'a user name ([a-z_][a-z0-9_.-]{0,31})');
  }
  return {
    command: request.command,
    args: request.args ?? [],
    migratable,
    cpus,
    labels,
    ...(request.user === undefined ? {} : { user: request.user }),
  };
}

/**
 * A create of a PID that already has a record: the same owner asking for the
 * same command again gets that record (a retried create); anything else is
 * another process under that PID.
 */
export function existingOnCreate(
  existing: ProcessRecord,
  wanted: NewProcess,
  owner: string,
): ProcessRecord {
  if (
    existing.owner === owner &&
    existing.command === wanted.command &&
    JSON.stringify(existing.args) === JSON.stringify(wanted.args)
  ) {
    return existing;
  }
  throw new AmalgamError('NAME_TAKEN', `cluster PID ${existing.cpid} is another process`, {
    field: 'cpid',
  });
}

const REPORT_EVENTS: readonly ProcessReport['event'][] = [
  'running',
  'exited',
  'failed',
  'source-stopped',
  'fence-source',
];

export function validateReportEvent(report: ProcessReport): void {
  if (!REPORT_EVENTS.includes(report.event)) throw invalid('event', REPORT_EVENTS.join('|'));
}

/** What a report of the node's copy needs besides the record. */
export interface ReportContext {
  node: string;
  now: number;
  /** fence-source only: whether the migration's source holds its liveness lease. */
  sourceAlive: boolean;
  fenceMarginMs: number;
}

/** The next record after `report` (the same record when nothing changes). */
export function applyReport(
  record: ProcessRecord,
  report: ProcessReport,
  context: ReportContext,
): ProcessRecord {
  const { node, now } = context;
  const { epoch } = report;
  switch (report.event) {
    case 'running':
      return reportRunning(record, node, epoch, now);
    case 'exited':
      return reportEnded(record, node, epoch, { exitCode: report.exitCode ?? 0 }, now);
    case 'failed':
      return reportEnded(record, node, epoch, { failure: report.failure ?? 'unknown' }, now);
    case 'source-stopped':
      return confirmSourceStopped(record, node, epoch, report.how ?? 'stopped', now);
    case 'fence-source':
      return fenceSource(record, node, epoch, context.sourceAlive, context.fenceMarginMs, now);
    default:
      throw invalid('event', REPORT_EVENTS.join('|'));
  }
}
