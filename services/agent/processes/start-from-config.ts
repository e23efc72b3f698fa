/** The agent's one hook for the process supervisor: start it when the config asks. */
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { createProcessClient } from '../../client/process-client.ts';
import type { AgentConfig } from '../config.ts';
import { SETPRIV } from '../tied-child.ts';
import { type ProcessSupervisor, startProcessSupervisor } from './supervisor.ts';

export async function startProcessesFromConfig(
  config: AgentConfig,
  tls: { ca: string; cert: string; key: string },
  logger: Logger,
): Promise<ProcessSupervisor | null> {
  if (!config.processes) return null;
  const client = createProcessClient({ endpoints: config.server, ...tls });
  const supervisor = await startProcessSupervisor({
    node: config.name,
    client,
    tls,
    config: { ...config.processes, dataDir: resolve(config.processes.dataDir) },
    logger,
    setpriv: SETPRIV,
  });
  return {
    leaseRenewed: (sentAt) => supervisor.leaseRenewed(sentAt),
    address: () => supervisor.address(),
    copies: () => supervisor.copies(),
    async close() {
      await supervisor.close();
      await client.close();
    },
  };
}
