/**
 * What this node does about one cluster process, as a pure function (like
 * ../page-server-decision.ts `decide`): the process's view (what the control
 * plane committed), the copy this node runs of it (if any), this node's lease
 * and the time in; ONE action out. The supervisor performs it and asks again.
 *
 * The fencing rules of services/core/processes.ts, seen from an agent:
 * - a copy runs only for the epoch at which the process is ours; a copy of an
 *   older epoch is killed, unless the process migrates away from us, in which
 *   case it is checkpointed (or stopped), shipped, and the stop confirmed;
 * - a copy is started only with a valid lease, and for a migration to us only
 *   once the source confirmed its copy is gone (or was fenced);
 * - a copy that ended by itself has its exit reported for its epoch.
 */
import type { ProcessView } from '../../api/contracts.ts';

/** How a copy ended, as its fence shim reported it. */
export interface CopyOutcome {
  code: number | null;
  signal: string | null;
  /** The shim killed it because the lease deadline passed. */
  fenced: boolean;
  /** It could not be started at all. */
  error?: string;
}

/** The copy this node has of a process: running, being ended by us, or ended by itself. */
export type CopyState =
  | { phase: 'running'; epoch: number }
  | { phase: 'ending'; epoch: number }
  | { phase: 'exited'; epoch: number; outcome: CopyOutcome };

/** What this node knows of itself. */
export interface Here {
  node: string;
  /** The lease deadline (ms): copies may run until then. */
  leaseDeadline: number;
  /** Whether a copy may start now (slots). */
  slotFree: boolean;
}

/** A start needs this much lease left. */
export const LEASE_MARGIN_MS = 1000;
/** How soon to look again while waiting for a lease or for the source of a migration. */
export const RETRY_MS = 500;

export type CopyAction =
  | { kind: 'none'; why: string }
  | { kind: 'wait'; ms: number; why: string }
  | { kind: 'start' }
  | { kind: 'report-running' }
  | { kind: 'report-exit'; outcome: CopyOutcome }
  /** Ends the copy: checkpoint (signal, exit 0), stop (signal) or kill. */
  | { kind: 'end'; how: 'checkpoint' | 'stop' | 'kill'; why: string }
  /** Ship the last checkpoint (if any) to the target and confirm `source-stopped`. */
  | { kind: 'ship' }
  /** The source of a migration to us has not confirmed: ask clusterd whether it is fenced. */
  | { kind: 'ask-fence' };

const TERMINAL: readonly ProcessView['state'][] = ['exited', 'failed', 'killed'];
export const isTerminalView = (view: ProcessView): boolean => TERMINAL.includes(view.state);

const migratesFrom = (view: ProcessView, node: string): boolean =>
  view.state === 'migrating' && view.migration?.from === node;

function decideLiveCopy(view: ProcessView | undefined, epoch: number, here: Here): CopyAction {
  if (!view || isTerminalView(view)) return { kind: 'end', how: 'kill', why: 'gone' };
  if (view.home === here.node && view.epoch === epoch) {
    return view.state === 'running' ? { kind: 'none', why: 'running' } : { kind: 'report-running' };
  }
  if (migratesFrom(view, here.node)) {
    const how = view.migratable === 'checkpoint' ? 'checkpoint' : 'stop';
    return { kind: 'end', how, why: 'migrating away' };
  }
  return { kind: 'end', how: 'kill', why: 'stale epoch' };
}

function decideNoCopy(view: ProcessView | undefined, here: Here, now: number): CopyAction {
  if (!view || isTerminalView(view)) return { kind: 'none', why: 'no process' };
  if (migratesFrom(view, here.node) && view.migration?.sourceStopped === null) {
    return { kind: 'ship' };
  }
  if (view.home !== here.node) return { kind: 'none', why: 'not ours' };
  if (view.state === 'migrating') {
    if (!view.migration) return { kind: 'none', why: 'migration unknown' };
    if (view.migration.sourceStopped === null) return { kind: 'ask-fence' };
  }
  if (now + LEASE_MARGIN_MS >= here.leaseDeadline) {
    return { kind: 'wait', ms: RETRY_MS, why: 'no lease' };
  }
  if (!here.slotFree) return { kind: 'none', why: 'no free slot' };
  return { kind: 'start' };
}

export function decideCopyAction(
  view: ProcessView | undefined,
  copy: CopyState | undefined,
  here: Here,
  now: number,
): CopyAction {
  if (!copy) return decideNoCopy(view, here, now);
  switch (copy.phase) {
    case 'running':
      return decideLiveCopy(view, copy.epoch, here);
    case 'ending':
      return { kind: 'none', why: 'ending' };
    case 'exited':
      return { kind: 'report-exit', outcome: copy.outcome };
  }
}

/** The report of a copy's own end, for its epoch. */
export function exitReport(
  epoch: number,
  outcome: CopyOutcome,
):
  | { epoch: number; event: 'exited'; exitCode: number }
  | {
      epoch: number;
      event: 'failed';
      failure: string;
    } {
  if (outcome.error !== undefined) {
    return { epoch, event: 'failed', failure: outcome.error.slice(0, 1000) };
  }
  if (outcome.code !== null) return { epoch, event: 'exited', exitCode: outcome.code };
  return { epoch, event: 'failed', failure: `killed by ${outcome.signal}` };
}
