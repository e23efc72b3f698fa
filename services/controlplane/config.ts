/**
 * clusterd's configuration file: JSON, checked field by field. A bad file
 * stops clusterd before it opens anything, with INVALID_ARGUMENT naming the
 * field (`details.field`, e.g. `tls.caKeyFile`).
 *
 * ```json
 * {
 *   "clusterName": "lab",
 *   "listen": { "host": "127.0.0.1", "port": 6443 },
 *   "tls": { "certFile": "clusterd.crt", "keyFile": "clusterd.key",
 *            "caFile": "ca.crt", "caKeyFile": "ca.key" },
 *   "store": { "backend": "embedded", "dataDir": "data" },
 *   "logLevel": "info"
 * }
 * ```
 * Relative paths are relative to the directory of the config file.
 * `store` may instead be `{ "backend": "etcd", "endpoints": ["https://127.0.0.1:2379"],
 * "tls": { "ca": "pki/etcd/ca.crt", "cert": "pki/etcd/clusterd-client.crt",
 * "key": "pki/etcd/clusterd-client.key" } }` (`tls` is required with https:// endpoints).
 * Optional: `nodeGraceSeconds` (heartbeat TTL, default 15), `bodyLimit` (bytes),
 * `singleMachine` (default false: every node is this machine, so page servers may
 * publish loopback endpoints; otherwise a heartbeat with one is INVALID_ARGUMENT),
 * `grpcListen` ({host, port}: also serve openapi/amalgam.proto over gRPC, same TLS files),
 * `join` ({ratePerSecond, burst, maxSources}: joins per source address, default 5/s with
 * bursts of 50 over at most 10000 addresses; maxContributedBytes: per join, default 1 TiB).
 * `limits` and `quotas` (limits.ts: timeouts, connection cap, gRPC message limit, watch caps
 * and queues; PID blocks and segments per owner).
 */

import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { compileConfigSchema } from '../api/config-check.ts';
import { AmalgamError } from '../core/errors.ts';
import type { EtcdTlsFiles } from '../store/etcd-tls.ts';
import { CLUSTERD_CONFIG_SCHEMA, LOG_LEVELS } from './config-schema.ts';
import type { JoinLimits } from './features/nodes/join-limits.ts';
import {
  type ProcessConfig,
  type ProcessConfigFile,
  processConfigFrom,
} from './features/processes/process-config.ts';
import type { LimitsConfig, QuotaConfig } from './limits.ts';

export { LOG_LEVELS };
export type LogLevel = (typeof LOG_LEVELS)[number];

export type StoreConfig =
  | { backend: 'embedded'; dataDir: string }
  | {
      backend: 'etcd';
      endpoints: string[];
      /** PEM files: the etcd CA, clusterd's etcd client certificate and key (https:// endpoints). */
      tls?: EtcdTlsFiles;
    };

export interface ClusterdConfig {
  clusterName: string;
  listen: { host: string; port: number };
  /** When set, the gRPC API (openapi/amalgam.proto) listens here too, with the same TLS material. */
  grpcListen?: { host: string; port: number };
  tls: {
    /** PEM server certificate; clusterd's own, then the CA's (joiners read the CA from the chain). */
    certFile: string;
    keyFile: string;
    /** The cluster CA certificate: the only issuer of client certificates clusterd believes. */
    caFile: string;
    /** The cluster CA key: clusterd signs node certificates at join. */
    caKeyFile: string;
  };
  store: StoreConfig;
  logLevel?: LogLevel;
  nodeGraceSeconds?: number;
  bodyLimit?: number;
  /** One machine only: loopback page-server endpoints are allowed (npm start, tests). */
  singleMachine?: boolean;
  /** The network process space (process-config.ts). */
  processes?: ProcessConfig;
  /** Limits of join (features/nodes/join-limits.ts). */
  join?: Partial<JoinLimits>;
  /** What clusterd bounds at its doors (limits.ts; every field optional). */
  limits?: Partial<LimitsConfig>;
  /** Quotas per owner (limits.ts; every field optional). */
  quotas?: Partial<QuotaConfig>;
}

const checkClusterdConfig = compileConfigSchema(CLUSTERD_CONFIG_SCHEMA);

/** The file as the schema has checked it, before its paths are resolved. */
type CheckedConfig = Omit<ClusterdConfig, 'processes'> & { processes?: ProcessConfigFile };

/**
 * Checks a parsed config against its schema (config-schema.ts) and resolves
 * its relative paths against `baseDir` (the config file's directory). Throws
 * INVALID_ARGUMENT naming the field (and `file`, when given).
 */
export function parseConfig(
  value: unknown,
  baseDir = process.cwd(),
  file?: string,
): ClusterdConfig {
  const issue = checkClusterdConfig(value);
  if (issue) {
    // The caller names the file in its own words (`bad config <file>: ...`); details carry it.
    throw new AmalgamError('INVALID_ARGUMENT', `${issue.field}: ${issue.message}`, {
      field: issue.field,
      ...(file === undefined ? {} : { file }),
    });
  }
  const checked = value as CheckedConfig;
  const path = (p: string) => resolve(baseDir, p);
  const { certFile, keyFile, caFile, caKeyFile } = checked.tls;
  const { processes, ...rest } = checked;
  const config: ClusterdConfig = {
    ...rest,
    listen: { ...checked.listen },
    tls: {
      certFile: path(certFile),
      keyFile: path(keyFile),
      caFile: path(caFile),
      caKeyFile: path(caKeyFile),
    },
    store:
      checked.store.backend === 'embedded'
        ? { backend: 'embedded', dataDir: path(checked.store.dataDir) }
        : etcdStoreConfig(checked.store, path),
  };
  if (processes !== undefined) config.processes = processConfigFrom(processes);
  return config;
}

function etcdStoreConfig(
  store: Extract<StoreConfig, { backend: 'etcd' }>,
  path: (p: string) => string,
): StoreConfig {
  const { tls } = store;
  return {
    backend: 'etcd',
    endpoints: [...store.endpoints],
    ...(tls ? { tls: { ca: path(tls.ca), cert: path(tls.cert), key: path(tls.key) } } : {}),
  };
}

/** Reads and checks a config file; INVALID_ARGUMENT (field `config`) when it is not JSON. */
export async function loadConfig(file: string): Promise<ClusterdConfig> {
  const path = resolve(file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new AmalgamError(
      'INVALID_ARGUMENT',
      `config: cannot read ${path}: ${(cause as Error).message}`,
      { field: 'config' },
      { cause },
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new AmalgamError(
      'INVALID_ARGUMENT',
      `config: ${path} is not JSON: ${(cause as Error).message}`,
      { field: 'config' },
      { cause },
    );
  }
  return parseConfig(value, dirname(path), path);
}
