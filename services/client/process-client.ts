/**
 * The typed client of the network process space (REST), next to client.ts:
 * one method per operation of the `processes` tag. Same errors as the main
 * client (ApiError with the catalogue code, ClientError).
 */

import type {
  CreateProcessRequest,
  ProcessLoadReport,
  ProcessLoadView,
  ProcessReport,
  ProcessView,
} from '../api/contracts.ts';
import type { PidBlock } from '../core/pid-blocks.ts';
import { ClientError } from './errors.ts';
import { createTransport, type Transport, type TransportOptions } from './transport.ts';
import { type ClientWatch, type ClientWatchOptions, openWatch } from './watch.ts';

export interface ProcessClient {
  claimPidBlock(size?: number): Promise<PidBlock>;
  listPidBlocks(): Promise<PidBlock[]>;
  create(request: CreateProcessRequest): Promise<ProcessView>;
  list(): Promise<ProcessView[]>;
  get(cpid: number): Promise<ProcessView>;
  kill(cpid: number): Promise<ProcessView>;
  migrate(cpid: number, to: string): Promise<ProcessView>;
  /** As node `node` (the caller), about its copy of `cpid`. */
  report(node: string, cpid: number, report: ProcessReport): Promise<ProcessView>;
  reportLoad(node: string, report: ProcessLoadReport): Promise<ProcessLoadView>;
  listLoads(): Promise<ProcessLoadView[]>;
  /** Changes of process records (`processes/`), resumed by itself. */
  watch(request?: Partial<ClientWatchOptions>): ClientWatch;
  close(): Promise<void>;
}

function itemsOf<T>(body: { items: T[] }, path: string): T[] {
  if (typeof body !== 'object' || body === null || !Array.isArray(body.items)) {
    throw new ClientError('BAD_RESPONSE', `GET ${path} did not answer { items: [...] }`);
  }
  return body.items;
}

export function createProcessClient(options: TransportOptions): ProcessClient {
  const transport: Transport = createTransport(options);
  const { call } = transport;
  return {
    claimPidBlock: (size) =>
      call<PidBlock>('POST', '/v1/pid-blocks', size === undefined ? {} : { size }),
    listPidBlocks: async () =>
      itemsOf(await call<{ items: PidBlock[] }>('GET', '/v1/pid-blocks'), '/v1/pid-blocks'),
    create: (request) => call<ProcessView>('POST', '/v1/processes', request),
    list: async () =>
      itemsOf(await call<{ items: ProcessView[] }>('GET', '/v1/processes'), '/v1/processes'),
    get: (cpid) => call<ProcessView>('GET', `/v1/processes/${cpid}`),
    kill: (cpid) => call<ProcessView>('POST', `/v1/processes/${cpid}/kill`, {}),
    migrate: (cpid, to) => call<ProcessView>('POST', `/v1/processes/${cpid}/migrate`, { to }),
    report: (node, cpid, report) =>
      call<ProcessView>(
        'POST',
        `/v1/nodes/${encodeURIComponent(node)}/processes/${cpid}/report`,
        report,
      ),
    reportLoad: (node, report) =>
      call<ProcessLoadView>('POST', `/v1/process-loads/${encodeURIComponent(node)}`, report),
    listLoads: async () =>
      itemsOf(
        await call<{ items: ProcessLoadView[] }>('GET', '/v1/process-loads'),
        '/v1/process-loads',
      ),
    watch: (request = {}) => openWatch(transport, { prefix: 'processes/', ...request }),
    close: () => transport.close(),
  };
}
