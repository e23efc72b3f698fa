/**
 * The network process space's requests and views (the process service itself
 * is the server's: services/controlplane/service/contracts.ts).
 */
import type { Migratable, ProcessRecord } from '../core/processes.ts';

export type ProcessView = ProcessRecord;

export interface ClaimPidBlockRequest {
  size?: number;
}

export interface CreateProcessRequest {
  command: string;
  args?: string[];
  migratable?: Migratable;
  cpus?: number;
  labels?: Record<string, string>;
  node?: string;
  cpid?: number;
}

export interface MigrateProcessRequest {
  to: string;
}

export type ProcessReportEvent =
  | 'running'
  | 'exited'
  | 'failed'
  | 'source-stopped'
  | 'fence-source';

export interface ProcessReport {
  epoch: number;
  event: ProcessReportEvent;
  how?: 'checkpointed' | 'stopped';
  exitCode?: number;
  failure?: string;
}

export interface ProcessLoadReport {
  cpus: number;
  cpuSpeed: number;
  load1: number;
  runnable: number;
  agentAddress?: string;
  processes: { cpid: number; epoch: number; cpu: number }[];
}

export interface ProcessLoadView extends Omit<ProcessLoadReport, 'agentAddress'> {
  node: string;
  reportedAt: number;
  agentAddress: string | null;
}
