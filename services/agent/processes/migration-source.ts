/**
 * The source side of a migration: ship the copy's last checkpoint to the
 * target's agent (its address from the process-load reports), over mutual TLS.
 */
import type { Logger } from 'pino';
import type { ProcessView } from '../../api/contracts.ts';
import type { SupervisorClient } from './supervisor-client.ts';
import { pushCheckpoint, type Tls } from './transfer.ts';

export interface ShipDeps {
  tls: Tls;
  client: Pick<SupervisorClient, 'get' | 'listLoads'>;
  logger: Logger;
  /** Keeps a fresher view of the process. */
  merge(view: ProcessView): void;
}

/** Ships `dir` to the migration's target; false when it must be tried again. */
export async function shipCheckpoint(
  deps: ShipDeps,
  view: ProcessView,
  dir: string,
): Promise<boolean> {
  const to = view.migration?.to as string;
  const loads = await deps.client.listLoads();
  const target = loads.find((l) => l.node === to)?.agentAddress;
  if (!target) {
    deps.logger.warn({ cpid: view.cpid, to }, 'target agent address unknown; retrying');
    return false;
  }
  try {
    const files = await pushCheckpoint(deps.tls, to, target, view.cpid, view.epoch, dir);
    deps.logger.info({ cpid: view.cpid, to, files }, 'checkpoint shipped');
    return true;
  } catch (err) {
    deps.logger.warn({ err, cpid: view.cpid, to }, 'checkpoint transfer failed; retrying');
    deps.merge(await deps.client.get(view.cpid).catch(() => view));
    return false;
  }
}
