/**
 * clusteragent's configuration: what `clusteradm join` writes (agent.json),
 * plus optional tuning. The file is checked by its JSON Schema
 * (config-schema.ts); this module adds what a schema cannot say (device names
 * by core's rule, a name listed twice) and resolves relative file names
 * against the file's directory. A bad file is an AgentConfigError naming the
 * file and the field: `agent config /etc/amalgam/agent.json: devices.block: a boolean is required`.
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { type ConfigIssue, compileConfigSchema } from '../api/config-check.ts';
import { isValidDeviceName } from '../core/devices.ts';
import { AGENT_CONFIG_SCHEMA, DEVICE_CONFIG_SCHEMA } from './config-schema.ts';
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

/** A bad agent config: `details.field` (`config` for the file as a whole) and `details.file`. */
export class AgentConfigError extends Error {
  readonly details: { field: string; file?: string };

  constructor(issue: ConfigIssue, file?: string, options?: { cause?: unknown }) {
    const where = file === undefined ? 'agent config' : `agent config ${file}`;
    // The file as a whole (`config`) needs no field in the words.
    const field = issue.field === 'config' ? '' : `${issue.field}: `;
    super(`${where}: ${field}${issue.message}`, options);
    this.name = 'AgentConfigError';
    this.details = { field: issue.field, ...(file === undefined ? {} : { file }) };
  }
}

const checkAgentSchema = compileConfigSchema(AGENT_CONFIG_SCHEMA);
const checkDeviceSchema = compileConfigSchema(DEVICE_CONFIG_SCHEMA);

/** The file as the schema has checked it: `server` may be one URL, `processes` false. */
type CheckedConfig = Omit<AgentConfig, 'server' | 'processes'> & {
  server: string | string[];
  processes?: Partial<ProcessAgentConfig> | false;
};

/** Reads and checks agent.json; relative file names are relative to its directory. */
export async function loadAgentConfig(file: string): Promise<AgentConfig> {
  const fail = (what: string, cause: unknown): never => {
    const message = `${what}: ${(cause as Error).message}`;
    throw new AgentConfigError({ field: 'config', message }, file, { cause });
  };
  let text = '';
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    fail('cannot read it', cause);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    fail('not JSON', cause);
  }
  return parseAgentConfig(raw, dirname(resolve(file)), file);
}

/**
 * Checks a parsed agent.json against its schema and the device rules, and
 * resolves its relative paths against `baseDir`. Throws AgentConfigError
 * naming the field (and `file`, when given).
 */
export function parseAgentConfig(value: unknown, baseDir: string, file?: string): AgentConfig {
  const issue = checkAgentSchema(value) ?? deviceIssue(value as AgentConfig);
  if (issue) throw new AgentConfigError(issue, file);
  const checked = value as CheckedConfig;
  const path = (p: string): string => (isAbsolute(p) ? p : resolve(baseDir, p));
  const { processes, server, ...rest } = checked;
  const config: AgentConfig = {
    ...rest,
    server: typeof server === 'string' ? [server] : [...server],
    certFile: path(checked.certFile),
    keyFile: path(checked.keyFile),
    caFile: path(checked.caFile),
  };
  // Cluster processes are on unless `processes: false`; their data lives next to agent.json.
  if (processes !== false) {
    config.processes = { ...processes, dataDir: path(processes?.dataDir ?? 'processes') };
  }
  if (checked.devices?.declared) {
    config.devices = {
      ...checked.devices,
      declared: checked.devices.declared.map((d) => ({ ...d, path: path(d.path) })),
    };
  }
  if (checked.remotedev) {
    const { mount, localdev } = checked.remotedev;
    config.remotedev = {
      ...checked.remotedev,
      ...(mount ? { mount: path(mount) } : {}),
      ...(localdev ? { localdev: path(localdev) } : {}),
    };
  }
  if (checked.stateDir) config.stateDir = path(checked.stateDir);
  return config;
}

/** Checks `devices` and `remotedev` (also for configs built in code). */
export function checkDeviceConfig(config: AgentConfig): void {
  const issue = checkDeviceSchema(config) ?? deviceIssue(config);
  if (issue) throw new AgentConfigError(issue);
}

/** What the schema cannot say of declared devices: core's name rule, each name once. */
function deviceIssue(config: AgentConfig): ConfigIssue | undefined {
  const names = new Set<string>();
  for (const [i, { name }] of (config.devices?.declared ?? []).entries()) {
    const field = `devices.declared[${i}].name`;
    if (!isValidDeviceName(name)) {
      return { field, message: "lowercase a-z, 0-9, '.', '_', '-' (1-63)" };
    }
    if (names.has(name)) return { field, message: 'listed twice' };
    names.add(name);
  }
  return undefined;
}
