/**
 * The JSON Schema of clusterd's config file (config.ts reads it). Fields are
 * listed in the order the file documents them, so the first complaint is the
 * first bad field.
 */
import type { ConfigSchema } from '../api/config-check.ts';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const path = {
  type: 'string',
  minLength: 1,
  maxLength: 4096,
  description: 'a non-empty path (relative to the config file)',
};
const endpoint = {
  type: 'object',
  required: ['host', 'port'],
  additionalProperties: false,
  properties: {
    host: { type: 'string', minLength: 1, maxLength: 255 },
    port: { type: 'integer', minimum: 0, maximum: 65535 },
  },
};
const seconds = (max: number) => ({ type: 'number', minimum: 0, maximum: max });

/** The `processes` block (features/processes/process-config.ts): all optional. */
export const PROCESS_CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    rebalance: { type: 'boolean' },
    rebalanceIntervalMs: { type: 'number', minimum: 50, maximum: 3_600_000 },
    threshold: { type: 'number', minimum: 0, maximum: 1000 },
    cooldownSeconds: seconds(86_400),
    minAgeSeconds: seconds(86_400),
    maxMovesPerProcess: { type: 'number', minimum: 0, maximum: 1_000_000 },
    maxMovesPerRound: { type: 'number', minimum: 1, maximum: 10_000 },
    fenceMarginSeconds: seconds(3600),
  },
} satisfies ConfigSchema;

export const CLUSTERD_CONFIG_SCHEMA = {
  type: 'object',
  required: ['clusterName', 'listen', 'tls', 'store'],
  additionalProperties: false,
  properties: {
    clusterName: {
      type: 'string',
      minLength: 1,
      maxLength: 253,
      pattern: '^[\\x21-\\x7e]+$',
      description: 'printable ASCII without spaces',
    },
    listen: endpoint,
    tls: {
      type: 'object',
      required: ['certFile', 'keyFile', 'caFile', 'caKeyFile'],
      additionalProperties: false,
      properties: { certFile: path, keyFile: path, caFile: path, caKeyFile: path },
    },
    store: {
      type: 'object',
      required: ['backend'],
      additionalProperties: false,
      properties: {
        backend: { type: 'string', enum: ['embedded', 'etcd'] },
        dataDir: path,
        endpoints: {
          type: 'array',
          minItems: 1,
          maxItems: 16,
          items: {
            type: 'string',
            maxLength: 1024,
            pattern: '^https?://[^\\s/]+/?$',
            description: 'an http(s)://host:port URL',
          },
        },
      },
      allOf: [
        {
          if: { properties: { backend: { const: 'embedded' } } },
          // biome-ignore lint/suspicious/noThenProperty: the JSON Schema keyword
          then: { required: ['dataDir'], properties: { endpoints: false } },
        },
        {
          if: { properties: { backend: { const: 'etcd' } } },
          // biome-ignore lint/suspicious/noThenProperty: the JSON Schema keyword
          then: { required: ['endpoints'], properties: { dataDir: false } },
        },
      ],
    },
    logLevel: { type: 'string', enum: LOG_LEVELS },
    nodeGraceSeconds: { type: 'integer', minimum: 1, maximum: 3600 },
    bodyLimit: { type: 'integer', minimum: 1024, maximum: 16 * 1024 * 1024 },
    grpcListen: endpoint,
    processes: PROCESS_CONFIG_SCHEMA,
  },
} satisfies ConfigSchema;
