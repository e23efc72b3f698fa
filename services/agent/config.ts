/** clusteragent's configuration: what `clusteradm join` writes (agent.json), plus optional tuning. */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { isValidDeviceName } from '../core/devices.ts';
import type { RemotedevConfig } from './device-space.ts';
import type { DevicesConfig } from './fingerprint/index.ts';
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
  /**
   * This machine's devices: `block` (default true: every block device of
   * /sys/class/block), `char` (character device paths to list) and `declared`
   * (`[{name, path, readOnly?}]`: files or images served as devices).
   */
  devices?: DevicesConfig;
  /** `{mount: "/remotedev", localdev: "/localdev"}`: mount the cluster's devices; off unless set. */
  remotedev?: RemotedevConfig;
  /** Where the agent writes the page server's --devices and remotedev-fuse's --tree files; default a temp dir. */
  stateDir?: string;
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
  const config: AgentConfig = {
    ...rest,
    ...(processes ? { processes } : {}),
    server: server as string[],
    certFile: path(c.certFile),
    keyFile: path(c.keyFile),
    caFile: path(c.caFile),
  };
  checkDeviceConfig(config);
  if (config.devices?.declared) {
    config.devices.declared = config.devices.declared.map((d) => ({ ...d, path: path(d.path) }));
  }
  if (config.remotedev?.mount) config.remotedev.mount = path(config.remotedev.mount);
  if (config.remotedev?.localdev) config.remotedev.localdev = path(config.remotedev.localdev);
  if (config.stateDir) config.stateDir = path(config.stateDir);
  return config;
}

const NO_SPACE = /^[^\s]+$/;

/** Checks `devices` and `remotedev` (also for configs built in code). */
export function checkDeviceConfig(config: AgentConfig): void {
  const d = config.devices as unknown;
  if (d !== undefined) {
    if (typeof d !== 'object' || d === null) fail('devices: an object is required');
    const devices = d as Record<string, unknown>;
    if (devices.block !== undefined && typeof devices.block !== 'boolean') {
      fail('devices.block: a boolean is required');
    }
    const char = devices.char ?? [];
    if (!Array.isArray(char) || !char.every((p) => typeof p === 'string' && isAbsolute(p))) {
      fail('devices.char: a list of absolute paths is required');
    }
    const declared = devices.declared ?? [];
    if (!Array.isArray(declared)) fail('devices.declared: a list of {name, path} is required');
    const names = new Set<string>();
    for (const [i, entry] of (declared as Record<string, unknown>[]).entries()) {
      if (!isValidDeviceName(entry?.name)) {
        fail(`devices.declared[${i}].name: lowercase a-z, 0-9, '.', '_', '-' (1-63)`);
      }
      if (names.has(entry.name as string)) fail(`devices.declared[${i}].name: listed twice`);
      names.add(entry.name as string);
      if (typeof entry.path !== 'string' || !NO_SPACE.test(entry.path)) {
        fail(`devices.declared[${i}].path: a path without whitespace is required`);
      }
      if (entry.readOnly !== undefined && typeof entry.readOnly !== 'boolean') {
        fail(`devices.declared[${i}].readOnly: a boolean is required`);
      }
    }
  }
  const r = config.remotedev as unknown;
  if (r !== undefined) {
    if (typeof r !== 'object' || r === null) fail('remotedev: an object is required');
    for (const key of ['mount', 'localdev', 'binary'] as const) {
      const value = (r as Record<string, unknown>)[key];
      if (value !== undefined && (typeof value !== 'string' || value === '')) {
        fail(`remotedev.${key}: a path is required`);
      }
    }
  }
}
