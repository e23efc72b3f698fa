/** Starts the process supervisor when the config asks, on the agent's client. */
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { AmalgamClient } from '../../client/index.ts';
import type { AgentConfig } from '../config.ts';
import { SETPRIV } from '../tied-child.ts';
import type { PeerIdentities } from './endpoint-access.ts';
import { type ProcessSupervisor, startProcessSupervisor } from './supervisor.ts';

export async function startProcessesFromConfig(
  config: AgentConfig,
  client: AmalgamClient,
  tls: { ca: string; cert: string; key: string },
  logger: Logger,
  /** The identities the cluster still accepts (services/agent/peer-identities.ts). */
  identities?: PeerIdentities,
): Promise<ProcessSupervisor | null> {
  if (!config.processes) return null;
  return startProcessSupervisor({
    node: config.name,
    client: client.processes,
    tls,
    config: { ...config.processes, dataDir: resolve(config.processes.dataDir) },
    logger,
    setpriv: SETPRIV,
    ...(identities ? { identities } : {}),
  });
}
