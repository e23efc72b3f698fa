/**
 * REST routes of the network process space: one handler per operationId of
 * the `processes` tag, each calling ONE service function. The handlers take
 * only what they use of the REST door's HandlerContext (rest/handlers.ts),
 * so this file does not import the list that composes them.
 */
import type {
  ClaimPidBlockRequest,
  CreateProcessRequest,
  MigrateProcessRequest,
  ProcessLoadReport,
  ProcessReport,
} from '../../../api/contracts.ts';
import type { Caller, ProcessService } from '../../service/contracts.ts';

/** The part of the REST door's handler context these routes read. */
export interface ProcessRouteContext {
  runtime: { processes: ProcessService };
  caller: Caller;
  /** Path parameters, schema-checked. */
  params: Record<string, string>;
  /** The request body, schema-checked against the operation's request schema. */
  body: unknown;
}

export type ProcessRoute = (
  context: ProcessRouteContext,
) => Promise<{ status: number; body: unknown }>;

function cpidOf(context: ProcessRouteContext): number {
  // The route's params schema makes this a decimal of at most 10 digits.
  return Number(context.params.cpid);
}

const nameOf = (context: ProcessRouteContext): string => context.params.name as string;
const json = (status: number, body: unknown) => ({ status, body });
/** `{items}` around a list (no caching wrapper: the lists change all the time). */
const items = (list: readonly unknown[]) => ({ items: list });

export const processRoutes: Record<string, ProcessRoute> = {
  claimPidBlock: async ({ runtime, caller, body }) =>
    json(201, await runtime.processes.claimPidBlock(caller, body as ClaimPidBlockRequest)),
  listPidBlocks: async ({ runtime, caller }) =>
    json(200, items(await runtime.processes.listPidBlocks(caller))),
  createProcess: async ({ runtime, caller, body }) =>
    json(201, await runtime.processes.create(caller, body as CreateProcessRequest)),
  listProcesses: async ({ runtime, caller }) =>
    json(200, items(await runtime.processes.list(caller))),
  getProcess: async (c) => json(200, await c.runtime.processes.get(c.caller, cpidOf(c))),
  killProcess: async (c) => json(200, await c.runtime.processes.kill(c.caller, cpidOf(c))),
  migrateProcess: async (c) =>
    json(
      200,
      await c.runtime.processes.migrate(c.caller, cpidOf(c), c.body as MigrateProcessRequest),
    ),
  reportProcess: async (c) =>
    json(
      200,
      await c.runtime.processes.report(c.caller, nameOf(c), cpidOf(c), c.body as ProcessReport),
    ),
  reportProcessLoad: async (c) =>
    json(
      200,
      await c.runtime.processes.reportLoad(c.caller, nameOf(c), c.body as ProcessLoadReport),
    ),
  listProcessLoads: async ({ runtime, caller }) =>
    json(200, items(await runtime.processes.listLoads(caller))),
};
