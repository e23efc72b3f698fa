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
 * `store` may instead be `{ "backend": "etcd", "endpoints": ["http://127.0.0.1:2379"] }`.
 * Optional: `nodeGraceSeconds` (heartbeat TTL, default 15), `bodyLimit` (bytes),
 * `grpcListen` ({host, port}: also serve openapi/amalgam.proto over gRPC, same TLS files).
 */

import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { AmalgamError } from '../core/errors.ts';
import { type ProcessConfig, parseProcessConfig } from './features/processes/process-config.ts';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type StoreConfig =
  | { backend: 'embedded'; dataDir: string }
  | { backend: 'etcd'; endpoints: string[] };

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
  /** The network process space (process-config.ts). */
  processes?: ProcessConfig;
}

function invalid(field: string, rule: string): AmalgamError {
  return new AmalgamError('INVALID_ARGUMENT', `${field}: ${rule}`, { field });
}

function object(value: unknown, field: string, known: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid(field || 'config', 'an object is required');
  }
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      throw invalid(
        field ? `${field}.${key}` : key,
        `not a known field (known: ${known.join(', ')})`,
      );
    }
  }
  return value as Record<string, unknown>;
}

function string(value: unknown, field: string, maxLength = 4096): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > maxLength) {
    throw invalid(field, `a non-empty string of at most ${maxLength} characters is required`);
  }
  return value;
}

function integer(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw invalid(field, `an integer from ${min} to ${max} is required`);
  }
  return value;
}

/**
 * Checks a parsed config and resolves its relative paths against `baseDir`
 * (the config file's directory). Throws INVALID_ARGUMENT naming the field.
 */
export function parseConfig(value: unknown, baseDir = process.cwd()): ClusterdConfig {
  const root = object(value, '', [
    'clusterName',
    'listen',
    'tls',
    'store',
    'logLevel',
    'nodeGraceSeconds',
    'bodyLimit',
    'grpcListen',
    'processes',
  ]);
  const path = (v: unknown, field: string) => resolve(baseDir, string(v, field));

  const clusterName = string(root.clusterName, 'clusterName', 253);
  if (!/^[\x21-\x7e]+$/.test(clusterName)) {
    throw invalid('clusterName', 'printable ASCII without spaces is required');
  }

  // Checked in the order the fields are documented, so the first complaint is the first field.
  const listenObject = object(root.listen, 'listen', ['host', 'port']);
  const listen = {
    host: string(listenObject.host, 'listen.host', 255),
    port: integer(listenObject.port, 'listen.port', 0, 65535),
  };
  const tlsObject = object(root.tls, 'tls', ['certFile', 'keyFile', 'caFile', 'caKeyFile']);
  const tls = {
    certFile: path(tlsObject.certFile, 'tls.certFile'),
    keyFile: path(tlsObject.keyFile, 'tls.keyFile'),
    caFile: path(tlsObject.caFile, 'tls.caFile'),
    caKeyFile: path(tlsObject.caKeyFile, 'tls.caKeyFile'),
  };
  const store = object(root.store, 'store', ['backend', 'dataDir', 'endpoints']);

  let storeConfig: StoreConfig;
  if (store.backend === 'embedded') {
    if (store.endpoints !== undefined)
      throw invalid('store.endpoints', 'only for the etcd backend');
    storeConfig = { backend: 'embedded', dataDir: path(store.dataDir, 'store.dataDir') };
  } else if (store.backend === 'etcd') {
    if (store.dataDir !== undefined)
      throw invalid('store.dataDir', 'only for the embedded backend');
    const endpoints = store.endpoints;
    if (!Array.isArray(endpoints) || endpoints.length === 0 || endpoints.length > 16) {
      throw invalid('store.endpoints', 'a list of 1 to 16 etcd client URLs is required');
    }
    storeConfig = {
      backend: 'etcd',
      endpoints: endpoints.map((e, i) => {
        const url = string(e, `store.endpoints[${i}]`, 1024);
        if (!/^https?:\/\/[^\s/]+\/?$/.test(url)) {
          throw invalid(`store.endpoints[${i}]`, 'an http(s)://host:port URL is required');
        }
        return url;
      }),
    };
  } else {
    throw invalid('store.backend', "'embedded' or 'etcd' is required");
  }

  const config: ClusterdConfig = { clusterName, listen, tls, store: storeConfig };
  if (root.logLevel !== undefined) {
    if (!LOG_LEVELS.includes(root.logLevel as LogLevel)) {
      throw invalid('logLevel', `one of ${LOG_LEVELS.join(', ')} is required`);
    }
    config.logLevel = root.logLevel as LogLevel;
  }
  if (root.nodeGraceSeconds !== undefined) {
    config.nodeGraceSeconds = integer(root.nodeGraceSeconds, 'nodeGraceSeconds', 1, 3600);
  }
  if (root.grpcListen !== undefined) {
    const grpcObject = object(root.grpcListen, 'grpcListen', ['host', 'port']);
    config.grpcListen = {
      host: string(grpcObject.host, 'grpcListen.host', 255),
      port: integer(grpcObject.port, 'grpcListen.port', 0, 65535),
    };
  }
  if (root.bodyLimit !== undefined) {
    config.bodyLimit = integer(root.bodyLimit, 'bodyLimit', 1024, 16 * 1024 * 1024);
  }
  if (root.processes !== undefined) config.processes = parseProcessConfig(root.processes);
  return config;
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
  return parseConfig(value, dirname(path));
}
