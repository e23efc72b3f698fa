/** clusteragent's configuration: what `clusteradm join` writes (agent.json), plus optional tuning. */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { PageServerOptions } from './pageserver-process.ts';
import type { ProcessAgentConfig } from './processes/supervisor.ts';

export interface AgentConfig {
  /** `https://host:port` of the clusterd replicas. */
  server: string[];
  name: string;
  certFile: string;
  keyFile: string;
  caFile: string;
  /** Seconds between heartbeats (jittered); must be below the cluster's node grace. Default 5. */
  heartbeatSeconds?: number;
  /** Bytes contributed; default RAM + swap. Only reported in the inventory. */
  contributeBytes?: number;
  pageserver?: PageServerOptions;
  /** Loopback port of the agent's /metrics; 0 picks a free one. Default 0. */
  metricsPort?: number;
  metricsHost?: string;
  /**
   * Run cluster processes (the network process space; processes/supervisor.ts). From a file
   * it is on by default (data in `processes/` next to agent.json); `false` turns it off.
   */
  processes?: ProcessAgentConfig;
}

function fail(message: string): never {
  throw new Error(`agent config: ${message}`);
}

/** Reads and checks agent.json; relative file names are relative to its directory. */
export async function loadAgentConfig(file: string): Promise<AgentConfig> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    fail(`cannot read ${file}: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null) fail('not a JSON object');
  const c = raw as Record<string, unknown>;
  const server = typeof c.server === 'string' ? [c.server] : c.server;
  if (
    !Array.isArray(server) ||
    server.length === 0 ||
    !server.every((s) => typeof s === 'string')
  ) {
    fail('server: one https:// URL or a list of them is required');
  }
  for (const key of ['name', 'certFile', 'keyFile', 'caFile'] as const) {
    if (typeof c[key] !== 'string' || c[key] === '') fail(`${key}: a string is required`);
  }
  if (
    c.heartbeatSeconds !== undefined &&
    (typeof c.heartbeatSeconds !== 'number' || !(c.heartbeatSeconds > 0))
  ) {
    fail('heartbeatSeconds: a number > 0');
  }
  const base = dirname(resolve(file));
  const path = (p: unknown): string =>
    isAbsolute(p as string) ? (p as string) : resolve(base, p as string);
  // Cluster processes are on unless `processes: false`; their data lives next to agent.json.
  let processes: AgentConfig['processes'];
  if (c.processes === undefined) processes = { dataDir: resolve(base, 'processes') };
  else if (c.processes === false) processes = undefined;
  else if (typeof c.processes === 'object' && c.processes !== null) {
    const p = c.processes as NonNullable<AgentConfig['processes']>;
    processes = { ...p, dataDir: path(p.dataDir ?? 'processes') };
  } else fail('processes: an object, or false to run no cluster processes');
  const { processes: _raw, ...rest } = c as unknown as AgentConfig;
  return {
    ...rest,
    ...(processes ? { processes } : {}),
    server: server as string[],
    certFile: path(c.certFile),
    keyFile: path(c.keyFile),
    caFile: path(c.caFile),
  };
}
