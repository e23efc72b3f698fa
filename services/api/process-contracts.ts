/**
 * The process service as the transports see it (the network process space;
 * kept next to contracts.ts, which holds the rest of the service layer).
 */
import type { PidBlock } from '../core/pid-blocks.ts';
import type { Caller } from './contracts.ts';
import type {
  ClaimPidBlockRequest,
  CreateProcessRequest,
  MigrateProcessRequest,
  ProcessLoadReport,
  ProcessLoadView,
  ProcessReport,
  ProcessView,
} from './types.ts';

export type {
  ClaimPidBlockRequest,
  CreateProcessRequest,
  MigrateProcessRequest,
  ProcessLoadReport,
  ProcessLoadView,
  ProcessReport,
  ProcessReportEvent,
  ProcessView,
} from './types.ts';

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
