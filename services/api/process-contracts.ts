/**
 * The process service as the transports see it (the network process space;
 * kept next to contracts.ts, which holds the rest of the service layer).
 */
import type { PidBlock } from '../core/pid-blocks.ts';
import type { Migratable, ProcessRecord } from '../core/processes.ts';
import type { Caller } from './contracts.ts';

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

export interface ProcessService {
  claimPidBlock(caller: Caller, request: ClaimPidBlockRequest): Promise<PidBlock>;
  /** Every claimed block, in claim order, read from the store (not a cache). */
  listPidBlocks(caller: Caller): Promise<PidBlock[]>;
  create(caller: Caller, request: CreateProcessRequest): Promise<ProcessView>;
  list(caller: Caller): Promise<ProcessView[]>;
  get(caller: Caller, cpid: number): Promise<ProcessView>;
  kill(caller: Caller, cpid: number): Promise<ProcessView>;
  migrate(caller: Caller, cpid: number, request: MigrateProcessRequest): Promise<ProcessView>;
  /** Only the node itself, about its own copy. */
  report(caller: Caller, node: string, cpid: number, report: ProcessReport): Promise<ProcessView>;
  reportLoad(caller: Caller, name: string, report: ProcessLoadReport): Promise<ProcessLoadView>;
  listLoads(caller: Caller): Promise<ProcessLoadView[]>;
}
