/** REST handlers of the network process space (spread into handlers.ts). */
import type {
  ClaimPidBlockRequest,
  CreateProcessRequest,
  MigrateProcessRequest,
  ProcessLoadReport,
  ProcessReport,
} from '../../../api/process-contracts.ts';
import type { Handler, HandlerContext } from '../../rest/route.ts';

function cpidOf(context: HandlerContext): number {
  // The route's params schema makes this a decimal of at most 10 digits.
  return Number(context.params.cpid);
}

const json = (status: number, body: unknown) => ({ status, body });
/** `{items}` around a list (no caching wrapper: the lists change all the time). */
const items = (list: readonly unknown[]) => ({ items: list });

export const processHandlers: Record<string, Handler> = {
  claimPidBlock: async ({ runtime, caller, body }) =>
    json(201, await runtime.processes.claimPidBlock(caller, body as ClaimPidBlockRequest)),
  listPidBlocks: async ({ runtime, caller }) =>
    json(200, items(await runtime.processes.listPidBlocks(caller))),
  createProcess: async ({ runtime, caller, body }) =>
    json(201, await runtime.processes.create(caller, body as CreateProcessRequest)),
  listProcesses: async ({ runtime, caller }) =>
    json(200, items(await runtime.processes.list(caller))),
  getProcess: async (context) =>
    json(200, await context.runtime.processes.get(context.caller, cpidOf(context))),
  killProcess: async (context) =>
    json(200, await context.runtime.processes.kill(context.caller, cpidOf(context))),
  migrateProcess: async (context) =>
    json(
      200,
      await context.runtime.processes.migrate(
        context.caller,
        cpidOf(context),
        context.body as MigrateProcessRequest,
      ),
    ),
  reportProcess: async (context) =>
    json(
      200,
      await context.runtime.processes.report(
        context.caller,
        context.params.name as string,
        cpidOf(context),
        context.body as ProcessReport,
      ),
    ),
  reportProcessLoad: async (context) =>
    json(
      200,
      await context.runtime.processes.reportLoad(
        context.caller,
        context.params.name as string,
        context.body as ProcessLoadReport,
      ),
    ),
  listProcessLoads: async ({ runtime, caller }) =>
    json(200, items(await runtime.processes.listLoads(caller))),
};
