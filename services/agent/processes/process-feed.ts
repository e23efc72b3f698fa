/**
 * The supervisor's desired state: every `ProcessView` of the cluster, kept
 * by an Informer of services/reconcile (a watch of `processes/`, resumed with
 * back-off, re-listed on WATCH_COMPACTED, and a full re-list every `resyncMs`
 * that redelivers every process). `onChange` gets the cluster PID and the
 * view (null when the process is gone).
 */
import type { Logger } from 'pino';
import type { ProcessView } from '../../api/contracts.ts';
import { Informer, type InformerWatch } from '../../reconcile/index.ts';
import type { SupervisorClient } from './supervisor-client.ts';

export interface ProcessFeedOptions {
  client: Pick<SupervisorClient, 'list' | 'watch'>;
  logger: Logger;
  resyncMs: number;
  onChange(cpid: number, view: ProcessView | null): void;
}

const ROOT = 'processes/';

export function followProcesses(options: ProcessFeedOptions): { close(): Promise<void> } {
  const { client } = options;
  const informer = new Informer<ProcessView>({
    name: 'processes',
    source: {
      list: async () => ({
        items: (await client.list()).map((v) => [`${ROOT}${v.cpid}`, v] as const),
      }),
      watch: (fromRevision) =>
        client.watch({
          retryForMs: 60_000,
          ...(fromRevision === undefined ? {} : { fromRevision }),
        }) as InformerWatch<ProcessView>,
    },
    onChange: (key, value) => options.onChange(Number(key.slice(ROOT.length)), value),
    resyncMs: options.resyncMs,
    baseDelayMs: 500,
    logger: options.logger,
  });
  informer.start();
  return { close: () => informer.close() };
}
