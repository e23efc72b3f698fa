/**
 * gRPC methods of the network process space (service Processes): decode,
 * call ONE service function (the same as the REST routes), and turn the
 * view's nulls into unset fields. The methods take only what they use of the
 * gRPC door's UnaryMethod (grpc/handlers.ts), so this file does not import
 * the table that composes them.
 */

import type {
  CreateProcessRequest,
  ProcessLoadView,
  ProcessReport,
  ProcessReportEvent,
  ProcessView,
} from '../../../api/contracts.ts';
import type { Caller, ProcessService } from '../../service/contracts.ts';

/** The part of the gRPC door's UnaryMethod these methods fill. */
export interface ProcessMethod {
  handle: (
    runtime: { processes: ProcessService },
    caller: Caller,
    request: Record<string, unknown>,
  ) => Promise<unknown>;
}

const present = <T>(value: T | null | undefined): T | undefined =>
  value === null ? undefined : value;
const str = (value: unknown): string => (typeof value === 'string' ? value : '');
const num = (value: unknown): number => (typeof value === 'number' ? value : 0);

/** proto3 has no null: a null field is left unset. */
function dropNulls<T extends object>(value: T): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (v !== null) out[k] = v;
  return out;
}

function processOut(r: ProcessView): Record<string, unknown> {
  return {
    ...dropNulls(r),
    ...(r.migration ? { migration: dropNulls(r.migration) } : {}),
  };
}

const loadOut = (l: ProcessLoadView) => dropNulls(l);

function createRequest(r: Record<string, unknown>): CreateProcessRequest {
  const out: CreateProcessRequest = { command: str(r.command) };
  const args = r.args as string[] | undefined;
  if (args && args.length > 0) out.args = args;
  const migratable = present(r.migratable as CreateProcessRequest['migratable']);
  if (migratable !== undefined) out.migratable = migratable;
  const cpus = present(r.cpus as number | undefined);
  if (cpus !== undefined) out.cpus = cpus;
  const labels = r.labels as Record<string, string> | undefined;
  if (labels && Object.keys(labels).length > 0) out.labels = labels;
  const node = present(r.node as string | undefined);
  if (node !== undefined) out.node = node;
  const cpid = present(r.cpid as number | undefined);
  if (cpid !== undefined) out.cpid = cpid;
  const user = present(r.user as string | undefined);
  if (user !== undefined) out.user = user;
  return out;
}

function reportRequest(r: Record<string, unknown>): ProcessReport {
  const out: ProcessReport = { epoch: num(r.epoch), event: str(r.event) as ProcessReportEvent };
  const how = present(r.how as ProcessReport['how']);
  if (how !== undefined) out.how = how;
  const exitCode = present(r.exitCode as number | undefined);
  if (exitCode !== undefined) out.exitCode = exitCode;
  const failure = present(r.failure as string | undefined);
  if (failure !== undefined) out.failure = failure;
  return out;
}

export const processMethods: Record<string, ProcessMethod> = {
  ClaimPidBlock: {
    handle: (runtime, caller, r) => {
      const size = present(r.size as number | undefined);
      return runtime.processes.claimPidBlock(caller, size === undefined ? {} : { size });
    },
  },
  ListPidBlocks: {
    handle: async (runtime, caller) => ({ items: await runtime.processes.listPidBlocks(caller) }),
  },
  Create: {
    handle: async (runtime, caller, r) =>
      processOut(await runtime.processes.create(caller, createRequest(r))),
  },
  List: {
    handle: async (runtime, caller) => ({
      items: (await runtime.processes.list(caller)).map(processOut),
    }),
  },
  Get: {
    handle: async (runtime, caller, r) =>
      processOut(await runtime.processes.get(caller, num(r.cpid))),
  },
  Kill: {
    handle: async (runtime, caller, r) =>
      processOut(await runtime.processes.kill(caller, num(r.cpid))),
  },
  Migrate: {
    handle: async (runtime, caller, r) =>
      processOut(await runtime.processes.migrate(caller, num(r.cpid), { to: str(r.to) })),
  },
  Report: {
    handle: async (runtime, caller, r) =>
      processOut(
        await runtime.processes.report(caller, str(r.name), num(r.cpid), reportRequest(r)),
      ),
  },
  ReportLoad: {
    handle: async (runtime, caller, r) => {
      const address = present(r.agentAddress as string | undefined);
      return loadOut(
        await runtime.processes.reportLoad(caller, str(r.name), {
          cpus: num(r.cpus),
          cpuSpeed: num(r.cpuSpeed),
          load1: num(r.load1),
          runnable: num(r.runnable),
          ...(address === undefined ? {} : { agentAddress: address }),
          processes: (r.processes as { cpid: number; epoch: number; cpu: number }[]) ?? [],
        }),
      );
    },
  },
  ListLoads: {
    handle: async (runtime, caller) => ({
      items: (await runtime.processes.listLoads(caller)).map(loadOut),
    }),
  },
};
