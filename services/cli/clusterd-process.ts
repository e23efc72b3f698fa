/**
 * Starting clusterd for `clusteradm init`: a detached process that outlives
 * clusteradm, logging to `<home>/clusterd.log`, its pid in `<home>/clusterd.pid`.
 */
import type { AmalgamClient } from '../client/index.ts';
import type { ClusterHome } from './cluster-home.ts';
import { type StartedDaemon, startDaemon, waitForDaemon } from './daemon-process.ts';

export function startClusterd(layout: ClusterHome): Promise<StartedDaemon> {
  return startDaemon({
    what: 'clusterd',
    entry: 'controlplane/server',
    args: ['--config', layout.clusterdConfig],
    cwd: layout.home,
    log: layout.log,
    pidFile: layout.pid,
    failure: 'CLUSTERD_START_FAILED',
  });
}

/** Polls /readyz until clusterd answers 2xx; fails early when the process ends. */
export function waitUntilReady(
  client: AmalgamClient,
  started: StartedDaemon,
  timeoutMs: number,
): Promise<void> {
  return waitForDaemon(
    started,
    'clusterd',
    'CLUSTERD_START_FAILED',
    () => client.ready(),
    timeoutMs,
  );
}
